/** datetime_now: the current instant in an IANA time zone, as ISO 8601 with offset plus its parts. */
import { LmxError } from "../../errors/codes.js";
import type { BuiltinSkill } from "./types.js";

export const datetimeNow: BuiltinSkill = {
  name: "datetime_now",
  description: "The current date and time in an IANA time zone (default UTC): ISO 8601 with offset, the parts, the weekday and the Unix time.",
  parameters: {
    type: "object",
    properties: { time_zone: { type: "string", description: "IANA time zone such as Europe/Paris or America/New_York; default UTC" } },
    additionalProperties: false,
  },
  outputSchema: {
    type: "object",
    properties: {
      iso: { type: "string" },
      time_zone: { type: "string" },
      utc_offset: { type: "string" },
      weekday: { type: "string" },
      unix_ms: { type: "number" },
    },
    required: ["iso", "time_zone", "utc_offset", "weekday", "unix_ms"],
  },
  run: async (args) => describeInstant(new Date(), (args["time_zone"] as string | undefined) ?? "UTC"),
};

export function describeInstant(now: Date, timeZone: string) {
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      weekday: "long",
      hourCycle: "h23",
      timeZoneName: "longOffset",
    });
  } catch {
    throw new LmxError("invalid_value", `'${timeZone}' is not an IANA time zone (e.g. Europe/Paris)`, { param: "arguments.time_zone" });
  }
  const parts = Object.fromEntries(format.formatToParts(now).map((p) => [p.type, p.value])) as Record<string, string>;
  // "GMT+02:00", or "GMT" for UTC itself
  const offset = (parts["timeZoneName"] ?? "GMT").replace(/^GMT/, "") || "+00:00";
  const ms = String(now.getUTCMilliseconds()).padStart(3, "0");
  return {
    iso: `${parts["year"]}-${parts["month"]}-${parts["day"]}T${parts["hour"]}:${parts["minute"]}:${parts["second"]}.${ms}${offset === "+00:00" ? "Z" : offset}`,
    time_zone: format.resolvedOptions().timeZone,
    utc_offset: offset,
    weekday: parts["weekday"] ?? "",
    unix_ms: now.getTime(),
  };
}
