/**
 * Agent Skills folders (`skills.folders`): every subfolder holding a `SKILL.md` is a skill. Its YAML front matter
 * gives `name` and `description` (the Agent Skills layout) and, our convention, optionally:
 *   parameters:    JSON Schema of the arguments (default: any object)
 *   output_schema: JSON Schema of the result
 *   command:       argv run like a command skill, from the skill's folder ("./run.sh" is the folder's run.sh):
 *                  arguments as JSON on stdin, one JSON value on stdout
 *   timeout_ms, max_output_bytes, env_allow, env: as for command skills (default `skills.folder_defaults`)
 * A skill without `command` is instructions only: running it returns `{name, instructions}` with the Markdown
 * body of SKILL.md, which a model reads and follows (Agent Skills' progressive disclosure).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { SKILL_NAME, type SkillsConfig } from "./config.js";
import { runSkillProcess } from "./process.js";
import type { Skill, SkillSource } from "./types.js";

const MAX_SKILL_MD_BYTES = 256 * 1024;

const frontMatterSchema = z.object({
  name: z.string().regex(SKILL_NAME, "name uses letters, digits, _ . - (at most 128)"),
  description: z.string().min(1),
  parameters: z.record(z.string(), z.unknown()).optional(),
  output_schema: z.record(z.string(), z.unknown()).optional(),
  command: z.array(z.string().min(1)).min(1).optional(),
  timeout_ms: z.number().int().positive().max(3_600_000).optional(),
  max_output_bytes: z.number().int().positive().optional(),
  env_allow: z.array(z.string().min(1)).optional(),
  env: z.record(z.string(), z.string()).optional(),
});

export interface ParsedSkillMd {
  frontMatter: z.infer<typeof frontMatterSchema>;
  body: string;
}

export function parseSkillMd(text: string): ParsedSkillMd {
  const match = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?([\s\S]*)$/.exec(text);
  if (!match) throw new Error("SKILL.md must start with YAML front matter between --- lines");
  const parsed = frontMatterSchema.safeParse(parseYaml(match[1]!));
  if (!parsed.success) throw new Error(`front matter: ${z.prettifyError(parsed.error).replace(/\n/g, " ")}`);
  return { frontMatter: parsed.data, body: match[2]!.trim() };
}

export class FolderSource implements SkillSource {
  readonly kind = "folder" as const;
  readonly name: string;
  private problems: string[] = [];

  constructor(
    private readonly folder: string,
    private readonly defaults: SkillsConfig["folder_defaults"],
  ) {
    this.name = folder;
  }

  async list(): Promise<Skill[]> {
    const problems: string[] = [];
    const skills: Skill[] = [];
    let entries: string[] = [];
    try {
      entries = readdirSync(this.folder).sort();
    } catch (error) {
      problems.push(`cannot read ${this.folder}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    for (const entry of entries) {
      const dir = path.join(this.folder, entry);
      const file = path.join(dir, "SKILL.md");
      try {
        if (!statSync(dir).isDirectory() || !statSync(file, { throwIfNoEntry: false })?.isFile()) continue;
        if (statSync(file).size > MAX_SKILL_MD_BYTES) throw new Error(`SKILL.md is larger than ${MAX_SKILL_MD_BYTES} bytes`);
        skills.push(this.skillOf(dir, parseSkillMd(readFileSync(file, "utf8"))));
      } catch (error) {
        problems.push(`${entry}: ${(error as Error).message}`);
      }
    }
    this.problems = problems;
    return skills;
  }

  health(): { ok: boolean; detail?: string } {
    return this.problems.length === 0 ? { ok: true } : { ok: false, detail: this.problems.join("; ") };
  }

  private skillOf(dir: string, { frontMatter: fm, body }: ParsedSkillMd): Skill {
    const command = fm.command?.map((part, i) => (i === 0 && /^\.\.?\//.test(part) ? path.resolve(dir, part) : part));
    const base = {
      name: fm.name,
      description: fm.description,
      parameters: fm.parameters ?? { type: "object" },
      outputSchema: fm.output_schema,
      timeoutMs: fm.timeout_ms ?? this.defaults.timeout_ms,
      source: "folder" as const,
      sourceName: dir,
      allowInLoop: false,
    };
    if (!command) return { ...base, run: async () => ({ name: fm.name, instructions: body }) };
    return {
      ...base,
      run: (args, context) =>
        runSkillProcess(
          {
            name: fm.name,
            argv: command,
            cwd: dir,
            envAllow: fm.env_allow ?? this.defaults.env_allow,
            env: { ...this.defaults.env, ...fm.env },
            maxOutputBytes: fm.max_output_bytes ?? this.defaults.max_output_bytes,
          },
          args,
          context.signal,
        ),
    };
  }
}
