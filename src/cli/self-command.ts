/**
 * How the user can run this very `lmx` again, for messages that tell them to: `lmx` where it came through the
 * package's bin link (npm link, npm install -g), else `node <path to main.js>`. Outside the repository `npx lmx`
 * would fetch an unrelated npm package of that name, so messages never suggest it.
 */
import path from "node:path";

export function lmxCommand(script: string | undefined = process.argv[1], cwd: string = process.cwd()): string {
  if (!script || path.basename(script) === "lmx") return "lmx";
  const relative = path.relative(cwd, script);
  const shown = relative && !relative.startsWith("..") && !path.isAbsolute(relative) ? relative : script;
  return `node ${shown.includes(" ") ? JSON.stringify(shown) : shown}`;
}

/** Rewrites the `lmx …` commands quoted in a message (in backticks) to the command that works here. */
export function withLmxCommand(text: string, command: string = lmxCommand()): string {
  return command === "lmx" ? text : text.replaceAll("`lmx ", `\`${command} `);
}
