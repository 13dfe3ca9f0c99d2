/**
 * unit_convert: length, mass, temperature and time with a fixed table (exact SI definitions), so a model gets
 * the same answer every time instead of recalling factors.
 */
import { LmxError } from "../../errors/codes.js";
import type { BuiltinSkill } from "./types.js";

/** Factor to the dimension's base unit (metre, kilogram, second). */
const LINEAR: Record<string, Record<string, number>> = {
  length: { mm: 0.001, cm: 0.01, m: 1, km: 1000, in: 0.0254, ft: 0.3048, yd: 0.9144, mi: 1609.344, nmi: 1852 },
  mass: { mg: 1e-6, g: 0.001, kg: 1, t: 1000, oz: 0.028349523125, lb: 0.45359237, st: 6.35029318 },
  time: { ms: 0.001, s: 1, min: 60, h: 3600, d: 86400, wk: 604800 },
};
const TEMPERATURE = ["C", "F", "K"] as const;
type TemperatureUnit = (typeof TEMPERATURE)[number];

export const UNITS = [...Object.values(LINEAR).flatMap((table) => Object.keys(table)), ...TEMPERATURE];

function dimensionOf(unit: string): string | null {
  if ((TEMPERATURE as readonly string[]).includes(unit)) return "temperature";
  return Object.keys(LINEAR).find((dimension) => unit in LINEAR[dimension]!) ?? null;
}

function toKelvin(value: number, unit: TemperatureUnit): number {
  return unit === "K" ? value : unit === "C" ? value + 273.15 : ((value - 32) * 5) / 9 + 273.15;
}

function fromKelvin(value: number, unit: TemperatureUnit): number {
  return unit === "K" ? value : unit === "C" ? value - 273.15 : ((value - 273.15) * 9) / 5 + 32;
}

export function convert(value: number, from: string, to: string): number {
  const dimension = dimensionOf(from);
  if (dimension !== dimensionOf(to))
    throw new LmxError("invalid_value", `cannot convert ${from} (${dimension}) to ${to} (${dimensionOf(to)})`, { param: "arguments.to" });
  if (dimension === "temperature") {
    if (toKelvin(value, from as TemperatureUnit) < 0)
      throw new LmxError("invalid_value", "the temperature is below absolute zero", { param: "arguments.value" });
    return round(fromKelvin(toKelvin(value, from as TemperatureUnit), to as TemperatureUnit));
  }
  const table = LINEAR[dimension!]!;
  return round((value * table[from]!) / table[to]!);
}

/** 12 significant digits: drops binary noise such as 0.30000000000000004 without losing real precision. */
function round(value: number): number {
  return Number(value.toPrecision(12));
}

export const unitConvert: BuiltinSkill = {
  name: "unit_convert",
  description: `Converts a value between units of length, mass, temperature or time. Units: ${UNITS.join(", ")}.`,
  parameters: {
    type: "object",
    properties: { value: { type: "number" }, from: { type: "string", enum: UNITS }, to: { type: "string", enum: UNITS } },
    required: ["value", "from", "to"],
    additionalProperties: false,
  },
  outputSchema: { type: "object", properties: { value: { type: "number" }, unit: { type: "string" } }, required: ["value", "unit"] },
  run: async (args) => ({ value: convert(args["value"] as number, args["from"] as string, args["to"] as string), unit: args["to"] as string }),
};
