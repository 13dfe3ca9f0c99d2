/**
 * Which model `lmx do` and `lmx chat` talk to: --model, else LMX_MODEL, else the first loaded chat model, else
 * the first available one (it loads on first use). The choice is always said out loud.
 */
import type { AvailableList, V1Model } from "./api-types.js";
import { CliError, EXIT } from "./exit.js";
import type { LmxClient } from "./http.js";
import { describeLocations } from "./commands/models.js";

export interface ChosenModel {
  id: string;
  /** Why this one: "--model", "LMX_MODEL", or a sentence about the server's list. */
  reason: string;
}

export function pickChatModel(models: readonly V1Model[]): ChosenModel | null {
  const chat = models.filter((m) => (m.type ?? "chat") === "chat" && m.status !== "unavailable");
  const loaded = chat.find((m) => m.status === "loaded");
  if (loaded) return { id: loaded.id, reason: "the first loaded chat model" };
  const first = chat[0];
  if (first) return { id: first.id, reason: "the first available chat model; it loads on first use" };
  return null;
}

export async function chooseModel(client: LmxClient, flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ChosenModel> {
  if (flag) return { id: flag, reason: "--model" };
  const fromEnv = env["LMX_MODEL"];
  if (fromEnv) return { id: fromEnv, reason: "LMX_MODEL" };
  const { body } = await client.get<{ data: V1Model[] }>("/v1/models", "v1");
  const picked = pickChatModel(body.data);
  if (picked) return picked;
  const others = body.data.map((m) => `${m.id} (${m.type ?? "?"})`);
  if (others.length > 0) {
    throw new CliError(
      `the server has no chat model; it has ${others.join(", ")}`,
      EXIT.failed,
      "chat needs a GGUF with a chat template (type: chat); pass --model to use one of these anyway",
    );
  }
  let where = "";
  try {
    const available = await client.get<AvailableList>("/admin/models/available", "admin");
    where = ` It looked in:\n${describeLocations(available.body.locations ?? [])}`.trimEnd();
  } catch {
    // without admin access the locations stay unknown; the error below still says what is wrong
  }
  throw new CliError(`the server has no models to serve.${where}`, EXIT.failed, "put GGUF files in one of its model folders, or `lmx pull org/repo`");
}
