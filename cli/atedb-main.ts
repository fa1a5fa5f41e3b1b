import yargs from 'yargs';
import { NotImplemented, UserError, runCli } from './errors.js';

export function main(argv: string[]): void {
  void runCli(async () => {
    await yargs(argv)
      .scriptName('atedb')
      .usage('$0 <command> [options]')
      .command('solo', 'run one atedb node with an embedded store', {}, () => { throw new NotImplemented('atedb solo'); })
      .demandCommand(1, 'say which command to run (see --help)')
      .strict()
      .fail((msg, err) => { throw err ?? new UserError(msg); })
      .help()
      .parseAsync();
  });
}
