// Tests are written in TypeScript and compiled by `npm run build` (the
// `pretest` step), so ava runs the emitted JavaScript.
export default {
  files: ['dist/test/**/*.test.js'],
  timeout: '120s',
  workerThreads: false,
};
