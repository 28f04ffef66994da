/* cmd.h — the retinac subcommands. Each lives in cli/cmd_<name>.c and defines
 *   int cmd_<name>(int argc, char **argv);   argv[0] is the subcommand name
 *   extern const char cmd_<name>_help[];     full help text for `retinac help <name>`
 * A command returns the process exit status (0 ok, 1 error, 2 usage); only main() exits.
 * Errors go to stderr as one line "retinac <cmd>: <where>: <what>".
 */
#ifndef RC_CMD_H
#define RC_CMD_H

#define RC_VERSION "0.1.0"

#define RC_DECLARE_CMD(n) int cmd_##n(int argc, char **argv); extern const char cmd_##n##_help[];
RC_DECLARE_CMD(check)
RC_DECLARE_CMD(compile)
RC_DECLARE_CMD(gen)
RC_DECLARE_CMD(bench)
RC_DECLARE_CMD(gradcheck)
RC_DECLARE_CMD(info)
RC_DECLARE_CMD(synth)
RC_DECLARE_CMD(train)
RC_DECLARE_CMD(eval)
RC_DECLARE_CMD(predict)
RC_DECLARE_CMD(rf)
RC_DECLARE_CMD(phenomena)
RC_DECLARE_CMD(search)
RC_DECLARE_CMD(compare)
RC_DECLARE_CMD(interneurons)
RC_DECLARE_CMD(report)
RC_DECLARE_CMD(import)

#endif
