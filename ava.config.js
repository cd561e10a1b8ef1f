// Tests are written in TypeScript and compiled by `npm run build` (the
// `pretest` step), so ava runs the emitted JavaScript. Every worker loads
// the exit guard: a worker held open after its tests fails, named, instead
// of hanging the run.
export default {
  files: ['dist/test/**/*.test.js'],
  require: ['./dist/test/helpers/exit-guard.js'],
  timeout: '120s',
  workerThreads: false,
};
