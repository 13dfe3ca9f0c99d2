/**
 * The fixed text benchmark prompts are cut from. Plain, common English (TinyStories-like), so every tokenizer
 * here — real models, stories260K's 512-token vocabulary, our random-weight models' synthetic one — splits it
 * into ordinary tokens; the length in tokens is then calibrated against each server's own count.
 */
const FIXED_TEXT =
  "Once upon a time there was a little girl named Lily who lived in a small house near a big green park. " +
  "Every morning she went out to play with her dog, a happy brown dog called Max. They ran under the tall trees, " +
  "looked at the birds in the sky and found red and blue flowers in the garden. One day Lily saw a tiny cat " +
  "sitting alone by the water. The cat was sad and cold, so Lily took it home and gave it some warm milk. " +
  "Her mom smiled and said that the cat could stay with them. From that day the girl, the dog and the cat were " +
  "friends, and they played together in the park every day. When the sun went down they sat on the grass and " +
  "told each other stories about kings and queens, about fast cars and big boats, and about the stars at night. " +
  "Lily wanted to learn how to read, so her dad gave her a new book with many pictures. She read one page every " +
  "evening before she went to sleep, and soon she could read the whole story by herself. She was very proud, " +
  "and she read the story to Max and to the little cat, who listened and did not say a word. In the winter the " +
  "park was white with snow, and Lily made a snow man with a big hat and a long red scarf. Her friend Tom came " +
  "to help, and they laughed when the hat fell off. Then they went back into the house, where it was warm, and " +
  "mom made hot soup for everyone. The next spring the trees were green again and the birds came back. ";

/** Questions for the multi-turn scenario: each turn asks something new about the same story. */
export const USER_TURNS: readonly string[] = [
  "Tell me what Lily did in the park with her dog and who she met there.",
  "Why was the little cat sad, and what did Lily give it when they got home?",
  "What did Lily learn to read, and who listened to her story every evening?",
  "Describe the snow man that Lily and Tom made in the winter, and why they laughed.",
  "What happened in the spring, and what do you think Lily did next with her friends?",
  "Now tell the whole story again in a few short sentences for a very young child.",
  "Which part of the story did you like best, and why?",
  "Give the story a new ending where the cat finds a friend of its own.",
];

/** About `chars` characters of the fixed text, cut at a word boundary (the text repeats as often as needed). */
export function textOfLength(chars: number): string {
  const target = Math.max(1, Math.round(chars));
  let text = FIXED_TEXT;
  while (text.length < target) text += FIXED_TEXT;
  if (text.length === target) return text;
  const cut = text.lastIndexOf(" ", target);
  return (cut > 0 ? text.slice(0, cut) : text.slice(0, target)).trimEnd();
}

/**
 * A prompt that no earlier request shares a prefix with: the request's own number comes first, so a server's
 * prefix cache (ours or llama-server's) cannot skip prompt processing and every request measures a cold prompt.
 */
export function uniquePrompt(serial: number, runTag: string, bodyChars: number): string {
  return `${serial} ${runTag}: ${textOfLength(bodyChars)}`;
}

/**
 * Chars per token assumed by the first calibration probe: a low guess (English runs 2–5 with real tokenizers),
 * so the probe stays under the target and cannot overflow a small context; the probe then measures the ratio.
 */
export const INITIAL_CHARS_PER_TOKEN = 1.5;
