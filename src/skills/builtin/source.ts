/** The built-in skills, filtered by `skills.builtins`. */
import type { Skill, SkillSource } from "../types.js";
import { arithmeticSkills } from "./arithmetic.js";
import { datetimeNow } from "./datetime.js";
import { jsonQuery } from "./json-query.js";
import { FileRoots, readFileSkill } from "./read-file.js";
import type { BuiltinSkill } from "./types.js";
import { unitConvert } from "./units.js";

export interface BuiltinSourceOptions {
  /** Names offered (`skills.builtins`). */
  allow: readonly string[];
  timeoutMs: number;
  fileRoots: readonly string[];
  maxFileBytes: number;
  /** count_tokens, when the gateway can lease models (absent in unit tests without a scheduler). */
  countTokens?: BuiltinSkill;
}

export class BuiltinSource implements SkillSource {
  readonly kind = "builtin" as const;
  readonly name = "builtin";
  private readonly skills: BuiltinSkill[];

  constructor(private readonly options: BuiltinSourceOptions) {
    const all = [
      ...arithmeticSkills,
      datetimeNow,
      unitConvert,
      jsonQuery,
      readFileSkill(new FileRoots(options.fileRoots), options.maxFileBytes),
      ...(options.countTokens ? [options.countTokens] : []),
    ];
    this.skills = all.filter((skill) => options.allow.includes(skill.name));
  }

  async list(): Promise<Skill[]> {
    return this.skills.map((skill) => ({
      ...skill,
      timeoutMs: this.options.timeoutMs,
      source: "builtin",
      sourceName: "builtin",
      // the registry decides from skills.allow_in_loop
      allowInLoop: false,
      run: skill.run,
    }));
  }

  health(): { ok: boolean; detail?: string } {
    return { ok: true };
  }
}
