/** The `ringtune` command line (commander). Each group of commands registers itself. */
import { Command } from 'commander';
import { registerModelCommands, registerServeCommand } from './model-commands.ts';
import { registerDemoCommand, registerTrainCommands } from './train-commands.ts';
import { exitWithParent } from '../util/parent-watch.ts';
import { registerClusterCommands } from './cluster-commands.ts';
import { registerHumanEvalCommands } from './humaneval-commands.ts';
import { registerSweepCommand } from './sweep-commands.ts';
import { registerDataCommands } from './data-commands.ts';

const program = new Command();
program
  .name('ringtune')
  .description('Fine-tune GPT-2, Llama and BERT checkpoints data-parallel with a gRPC ring all-reduce')
  .version('0.1.0')
  .showHelpAfterError();

registerModelCommands(program);
registerTrainCommands(program);
registerClusterCommands(program);
registerDemoCommand(program);
registerDataCommands(program);
registerServeCommand(program);
registerHumanEvalCommands(program);
registerSweepCommand(program);

exitWithParent();
await program.parseAsync(process.argv);
