import yargs from 'yargs';
import { UserError, runCli } from './errors.js';
import { mountOptions, toMountArgs } from './mount-args.js';
import { authCommands } from './auth-commands.js';

export function main(argv: string[]): void {
  void runCli(async () => {
    await authCommands(yargs(argv))
      .scriptName('atefs')
      .usage('$0 <command> [options]')
      .command('mount <dir> [remote]', 'mount a chain as a directory', (y) => mountOptions(y), async (v) => {
        const { runMount } = await import('./mount.js');
        await runMount(toMountArgs(v as Record<string, unknown>));
      })
      .command('unmount <dir>', 'unmount a mounted chain', (y) =>
        y.positional('dir', { type: 'string', demandOption: true })
         .option('json', { type: 'boolean', default: false, describe: 'JSON output' }), async (v) => {
        const { runUnmount } = await import('./unmount.js');
        await runUnmount({ dir: String(v.dir), json: !!v.json });
      })
      .command('verify [remote]', 'validate every commit of the local chain (or of a remote one, downloaded) and list all problems', (y) =>
        y.positional('remote', { type: 'string', describe: 'a remote chain URL (tcp://host[:port]/chain): its whole history as the server holds it' })
         .option('log-path', { type: 'string', describe: 'directory of the local chain (default under $XDG_DATA_HOME/atefs)' })
         .option('server-key', { type: 'string', describe: 'the server\'s fingerprint (remote; otherwise known_hosts)' })
         .option('json', { type: 'boolean', default: false, describe: 'JSON output' }), async (v) => {
        if (typeof v.remote === 'string') {
          const { runVerifyRemote } = await import('./verify-remote.js');
          await runVerifyRemote({ url: v.remote, ...(typeof v.serverKey === 'string' ? { serverKey: v.serverKey } : {}), json: !!v.json });
          return;
        }
        const { runVerify } = await import('./chain-tools.js');
        await runVerify({ ...(typeof v.logPath === 'string' ? { logPath: v.logPath } : {}), json: !!v.json });
      })
      .command('repair', 'cut a damaged local chain back to its valid prefix (the rest is kept aside)', (y) =>
        y.option('log-path', { type: 'string', describe: 'directory of the local chain (default under $XDG_DATA_HOME/atefs)' })
         .option('json', { type: 'boolean', default: false, describe: 'JSON output' }), async (v) => {
        const { runRepair } = await import('./chain-tools.js');
        await runRepair({ ...(typeof v.logPath === 'string' ? { logPath: v.logPath } : {}), json: !!v.json });
      })
      .command('log [target]', "the chain's commits, newest first (a chain directory, a mountpoint, or --log-path)", (y) =>
        y.positional('target', { type: 'string', describe: 'a mountpoint or a chain directory' })
         .option('log-path', { type: 'string', describe: 'directory of the local chain (default under $XDG_DATA_HOME/atefs)' })
         .option('path', { type: 'string', describe: 'only the commits that changed this file (a path inside the filesystem)' })
         .option('limit', { type: 'number', describe: 'show at most this many commits' })
         .option('json', { type: 'boolean', default: false, describe: 'JSON output' }), async (v) => {
        const { runLog } = await import('./history.js');
        await runLog({
          ...(typeof v.target === 'string' ? { target: v.target } : {}),
          ...(typeof v.logPath === 'string' ? { logPath: v.logPath } : {}),
          ...(typeof v.path === 'string' ? { path: v.path } : {}),
          ...(typeof v.limit === 'number' ? { limit: v.limit } : {}),
          json: !!v.json,
        });
      })
      .command('status [dir]', 'list this user\'s mounts, or show one mount\'s live status', (y) =>
        y.positional('dir', { type: 'string', describe: 'a mountpoint: its live panel (plain lines off a terminal)' })
         .option('json', { type: 'boolean', default: false, describe: 'one JSON object (JSON lines with --watch)' })
         .option('watch', { type: 'boolean', default: false, describe: 'keep printing (every --interval ms)' })
         .option('interval', { type: 'number', default: 1000, describe: 'ms between updates' }), async (v) => {
        const { runStatus } = await import('./status.js');
        await runStatus({ ...(typeof v.dir === 'string' ? { dir: v.dir } : {}), json: !!v.json, watch: !!v.watch, interval: Math.max(100, Number(v.interval) || 1000) });
      })
      .demandCommand(1, 'say which command to run (see --help)')
      .strict()
      .fail((msg, err) => { throw err ?? new UserError(msg); })
      .help()
      .parseAsync();
  });
}
