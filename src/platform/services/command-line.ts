// Splits a command line typed for `services add --command` into a program and its arguments,
// the way a POSIX shell would quote it (single quotes, double quotes, backslash escapes), but
// without running a shell: a service is spawned directly, so anything only a shell would do
// (pipes, lists, redirections, expansions, globs, variable assignments) is refused with the
// fix, rather than passed on as literal text that would make the service fail at every start.
import { SchedulerError } from "../../engine/errors.ts";

const WHITESPACE = new Set([" ", "\t", "\n"]);
/** Characters that end a word and start an operator in a shell: | & ; < > ( ). */
const OPERATORS = new Set(["|", "&", ";", "<", ">", "(", ")"]);
/** Unquoted, a shell expands a word holding one of these into file names. */
const GLOBS = new Set(["*", "?", "["]);
/** Inside double quotes a backslash escapes only these; before anything else it is literal. */
const DOUBLE_QUOTE_ESCAPES = new Set(["$", "`", '"', "\\", "\n"]);
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;

const QUOTING_EXAMPLE = `--command "python3 -m http.server 8080", or --command 'node "my server.js" --verbose'`;
const SCRIPT_HINT =
  "put the command line in a script (first line #!/bin/sh, then chmod +x) and give its path: --command /path/to/start.sh; " +
  "or quote the character if it belongs to an argument";

function refused(message: string, hint: string): SchedulerError {
  return new SchedulerError("invalid_command", message, { hint, exitCode: 2 });
}

/** What a shell would make of an unquoted special character at `at`, for the error message. */
function shellFeature(text: string, at: number): { shown: string; meaning: string } {
  const char = text[at]!;
  const pair = text.slice(at, at + 2);
  if (pair === "&&" || pair === "||") return { shown: pair, meaning: "a command list" };
  if (pair === "$(") return { shown: "$(...)", meaning: "command substitution" };
  if (char === "`") return { shown: "`...`", meaning: "command substitution" };
  if (char === "$") return { shown: "$", meaning: "variable expansion" };
  if (char === "|") return { shown: "|", meaning: "a pipe" };
  if (char === ";" || char === "&") return { shown: char, meaning: "a command list" };
  if (char === "<" || char === ">") return { shown: char, meaning: "a redirection" };
  return { shown: char, meaning: "a subshell" };
}

function refuseShellFeature(text: string, at: number, what: string): never {
  const { shown, meaning } = shellFeature(text, at);
  throw refused(
    `${what} contains '${shown}' (character ${at + 1}), ${meaning}, which only a shell understands: services are started directly, without a shell`,
    SCRIPT_HINT,
  );
}

/**
 * The words of a command line: the program first, then its arguments. Throws a SchedulerError
 * (code invalid_command) naming the problem and the fix for unbalanced quotes, a trailing
 * backslash, and anything that needs a shell. `what` names the input in messages.
 */
export function splitCommandLine(text: string, what = "--command"): string[] {
  const words: string[] = [];
  let word: string | null = null; // null: between words
  let i = 0;
  const append = (chars: string) => {
    word = (word ?? "") + chars;
  };
  while (i < text.length) {
    const char = text[i]!;
    if (WHITESPACE.has(char)) {
      if (word !== null) words.push(word);
      word = null;
      i++;
    } else if (char === "\\") {
      if (i + 1 >= text.length) throw refused(`${what} ends with a backslash, which escapes nothing`, `remove it, or write \\\\ for a literal backslash`);
      if (text[i + 1] !== "\n") append(text[i + 1]!); // backslash-newline joins lines
      i += 2;
    } else if (char === "'") {
      const close = text.indexOf("'", i + 1);
      if (close === -1) throw refused(`${what} has an unclosed single quote (') at character ${i + 1}`, `close it, e.g. ${QUOTING_EXAMPLE}`);
      append(text.slice(i + 1, close));
      i = close + 1;
    } else if (char === '"') {
      let j = i + 1;
      let quoted = "";
      for (;;) {
        if (j >= text.length) throw refused(`${what} has an unclosed double quote (") at character ${i + 1}`, `close it, e.g. ${QUOTING_EXAMPLE}`);
        const inner = text[j]!;
        if (inner === '"') break;
        if (inner === "\\" && j + 1 < text.length && DOUBLE_QUOTE_ESCAPES.has(text[j + 1]!)) {
          if (text[j + 1] !== "\n") quoted += text[j + 1];
          j += 2;
        } else if (inner === "$" || inner === "`") {
          refuseShellFeature(text, j, what);
        } else {
          quoted += inner;
          j++;
        }
      }
      append(quoted);
      i = j + 1;
    } else if (OPERATORS.has(char) || char === "$" || char === "`") {
      refuseShellFeature(text, i, what);
    } else if (GLOBS.has(char)) {
      throw refused(
        `${what} contains '${char}' (character ${i + 1}) unquoted, which a shell would expand into file names; services are started without a shell`,
        `quote it if it is literal ('${char}'), or list the files yourself`,
      );
    } else if (word === null && (char === "#" || char === "~")) {
      const meaning = char === "#" ? "starts a comment" : "stands for a home directory";
      throw refused(`${what} has '${char}' at the start of a word (character ${i + 1}), which ${meaning} in a shell; services are started without a shell`,
        char === "#" ? "quote it ('#') if it belongs to an argument" : "write the full path, e.g. /home/me/bin/server instead of ~/bin/server");
    } else {
      append(char);
      i++;
    }
  }
  if (word !== null) words.push(word);
  const assignment = words[0] !== undefined ? ASSIGNMENT.exec(words[0]) : null;
  if (assignment) {
    throw refused(`${what} starts with '${words[0]}', which a shell would take as an environment variable, not as the program`,
      `give it with --env ${words[0]} and start --command with the program`);
  }
  return words;
}
