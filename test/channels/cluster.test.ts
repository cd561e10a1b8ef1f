/*
 * Channels in a cluster: membership is the manifest's `channels`, so a
 * peer pulls an image of any channel (its file with channel=*, not only
 * the default channel's), and channel-add and leaving a channel reach
 * every server like any other manifest change.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { testNeeding } from '../helpers/system-tools.js';
import { ETCD, EtcdProcess, Node, testPrefix, until } from '../cluster/kit.js';
import { call, parse } from '../publish/kit.js';
import { sha1 } from '../helpers/images.js';
import { CHANNELS, publishTo, v2Json } from './kit.js';

const test = testNeeding(ETCD, 'etcd', 'etcd-server');

async function channelsOn(node: Node, uuid: string): Promise<string[] | undefined> {
  const res = await call(node.url, 'GET', `/images/${uuid}?channel=*`, { auth: null, headers: { 'accept-version': '~2' } });
  return res.status === 200 ? parse(res).channels : undefined;
}

test.serial('an image published to dev reaches a peer in dev; channel-add and leaving a channel replicate', async (t) => {
  t.timeout(120_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  const [a, b] = await Promise.all(['a', 'b'].map((name) => Node.start(t, name, etcd, prefix, { config: { channels: CHANNELS } })));
  const bytes = gzipSync(randomBytes(16 * 1024));
  const { uuid } = await publishTo(a!.url, 'channel=dev', bytes);
  const same = (want: string[]) => async () => JSON.stringify(await channelsOn(b!, uuid)) === JSON.stringify(want);

  await until('B has the dev image', same(['dev']));
  const file = await call(b!.url, 'GET', `/images/${uuid}/file?channel=dev`, { auth: null });
  t.is(sha1(file.body), sha1(bytes), 'B pulled the file of an image outside the default channel');
  t.is((await call(b!.url, 'GET', `/images/${uuid}`, { auth: null })).status, 404, 'not in B\'s default channel');

  const added = await call(a!.url, 'POST', `/images/${uuid}?action=channel-add&channel=dev`, v2Json({ channel: 'release' }));
  t.is(added.status, 200, added.body.toString());
  await until('B sees it in release too', same(['dev', 'release']));
  t.is((await call(b!.url, 'GET', `/images/${uuid}`, { auth: null })).status, 200);

  t.is((await call(a!.url, 'DELETE', `/images/${uuid}?channel=dev`)).status, 204);
  await until('B sees it left dev', same(['release']));
  t.pass();
});
