/** add, subtract, multiply, divide: `{left, right}` → a number. Pure, so the server-side loop may run them by default. */
import { LmxError } from "../../errors/codes.js";
import type { BuiltinSkill } from "./types.js";

const operands = {
  type: "object",
  properties: { left: { type: "number" }, right: { type: "number" } },
  required: ["left", "right"],
  additionalProperties: false,
} as const;

function arithmetic(name: string, description: string, apply: (left: number, right: number) => number): BuiltinSkill {
  return {
    name,
    description,
    parameters: operands,
    outputSchema: { type: "number" },
    run: async (args) => {
      const result = apply(args["left"] as number, args["right"] as number);
      // JSON has no Infinity or NaN: an overflow is an error, not a silent null
      if (!Number.isFinite(result))
        throw new LmxError("invalid_value", `${name} overflowed: the result is not a finite number`, { param: "arguments" });
      return result;
    },
  };
}

export const arithmeticSkills: BuiltinSkill[] = [
  arithmetic("add", "Adds two numbers: left + right.", (l, r) => l + r),
  arithmetic("subtract", "Subtracts two numbers: left - right.", (l, r) => l - r),
  arithmetic("multiply", "Multiplies two numbers: left * right.", (l, r) => l * r),
  arithmetic("divide", "Divides two numbers: left / right (right must not be 0).", (l, r) => {
    if (r === 0) throw new LmxError("invalid_value", "division by zero: arguments.right must not be 0", { param: "arguments.right" });
    return l / r;
  }),
];
