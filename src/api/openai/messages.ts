/** Request helpers that runner processes use: kept apart from the zod schemas so runners do not load zod. */

/** A message's content as plain text: either a string or OpenAI's array of text parts. */
export function messageText(content: string | Array<{ type: "text"; text: string }> | null | undefined): string {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  return content.map((part) => part.text).join("");
}

export function stopList(stop: string | string[] | null | undefined): string[] {
  if (stop === null || stop === undefined) return [];
  return typeof stop === "string" ? [stop] : stop;
}
