// Preloaded into the APIs and the floor by bench/intake when BENCH_PROFILE_DIR
// is set (NODE_OPTIONS=--import=…; --cpu-prof is not allowed in NODE_OPTIONS):
// profiles the whole process and writes <dir>/<name>-<pid>.cpuprofile at exit.
// BENCH_PROFILE_ONLY=<text>[,<text>...] profiles only the main threads whose
// command line contains one of them (e.g. src/workers/orders.ts): a profiler in
// every process of a stack slows the whole stack down and distorts the result.
import fs from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';
import process from 'node:process';
import { isMainThread } from 'node:worker_threads';

const dir = process.env.BENCH_PROFILE_DIR;
const only = process.env.BENCH_PROFILE_ONLY?.split(',').filter(Boolean);
const commandLine = process.argv.join(' ');
const chosen = isMainThread && (!only || only.some((text) => commandLine.includes(text)));
if (dir && chosen) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.start');
  let written = false;
  const write = () => {
    if (written) return;
    written = true;
    // An in-process session answers synchronously, so this works in 'exit'.
    session.post('Profiler.stop', (err, result) => {
      if (err) return;
      fs.mkdirSync(dir, { recursive: true });
      const entry = /(?:src|bench)\/(\S+?)\.[cm]?[jt]s\b/
        .exec(commandLine)?.[1]
        ?.replaceAll('/', '-');
      const name = process.env.BENCH_PROFILE_NAME ?? entry ?? 'node';
      fs.writeFileSync(
        path.join(dir, `${name}-${process.pid}.cpuprofile`),
        JSON.stringify(result.profile),
      );
    });
  };
  process.once('exit', write);
  // A process that is killed after a slow drain never reaches 'exit': the profile is taken at the stop signal.
  process.prependOnceListener('SIGTERM', write);
  process.prependOnceListener('SIGINT', write);
}
