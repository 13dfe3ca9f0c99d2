/**
 * read_file: reads a file inside the configured folders (`skills.files.roots`), never outside. The path, links
 * and `..` included, is resolved with realpath first and the real path must lie in a real root; the real path is
 * what is opened (O_NOFOLLOW), so a link swapped in after the check is not followed either. No roots: every
 * path is refused.
 */
import { constants, realpathSync } from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import { LmxError } from "../../errors/codes.js";
import type { BuiltinSkill } from "./types.js";

export class FileRoots {
  private readonly roots: string[];

  constructor(roots: readonly string[]) {
    this.roots = roots.map((root) => realOrNull(root)).filter((root): root is string => root !== null);
  }

  get configured(): boolean {
    return this.roots.length > 0;
  }

  /** The real path of `requested` (relative paths are taken from the first root) when it is inside a root; else throws. */
  resolve(requested: string): string {
    if (!this.configured)
      throw new LmxError("skill_forbidden", "read_file has no folders to read: set skills.files.roots", { param: "arguments.path" });
    if (requested.includes("\0")) throw new LmxError("invalid_value", "the path contains a NUL byte", { param: "arguments.path" });
    const lexical = path.resolve(this.roots[0]!, requested);
    const real = realOrNull(lexical);
    const refused = new LmxError("skill_forbidden", `${requested} is outside the folders read_file may read (skills.files.roots)`, {
      param: "arguments.path",
    });
    if (real === null) {
      // say "missing" only where the caller may look: elsewhere, existence is not disclosed
      if (this.inside(lexical)) throw new LmxError("not_found", `${requested} does not exist`, { param: "arguments.path" });
      throw refused;
    }
    if (!this.inside(real)) throw refused;
    return real;
  }

  private inside(file: string): boolean {
    return this.roots.some((root) => file === root || file.startsWith(root.endsWith(path.sep) ? root : root + path.sep));
  }
}

function realOrNull(file: string): string | null {
  try {
    return realpathSync(file);
  } catch {
    return null;
  }
}

export function readFileSkill(roots: FileRoots, maxBytes: number): BuiltinSkill {
  return {
    name: "read_file",
    description: `Reads a file from the folders the server allows (at most ${maxBytes} bytes from offset; the rest is reported as truncated). Paths may be relative to the first allowed folder.`,
    parameters: {
      type: "object",
      properties: {
        path: { type: "string", minLength: 1 },
        offset: { type: "integer", minimum: 0 },
        encoding: { enum: ["utf8", "base64"] },
      },
      required: ["path"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        path: { type: "string" },
        size: { type: "integer" },
        content: { type: "string" },
        encoding: { type: "string" },
        truncated: { type: "boolean" },
      },
      required: ["path", "size", "content", "encoding", "truncated"],
    },
    run: async (args) => {
      const real = roots.resolve(args["path"] as string);
      const offset = (args["offset"] as number | undefined) ?? 0;
      const encoding = (args["encoding"] as "utf8" | "base64" | undefined) ?? "utf8";
      const handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
        throw new LmxError("invalid_value", `${args["path"] as string} cannot be read: ${error.code ?? error.message}`, { param: "arguments.path" });
      });
      try {
        const stats = await handle.stat();
        if (!stats.isFile()) throw new LmxError("invalid_value", `${args["path"] as string} is not a regular file`, { param: "arguments.path" });
        const length = Math.max(0, Math.min(maxBytes, stats.size - offset));
        const buffer = Buffer.alloc(length);
        const { bytesRead } = await handle.read(buffer, 0, length, offset);
        return {
          path: real,
          size: stats.size,
          content: buffer.subarray(0, bytesRead).toString(encoding),
          encoding,
          truncated: offset + bytesRead < stats.size,
        };
      } finally {
        await handle.close();
      }
    },
  };
}
