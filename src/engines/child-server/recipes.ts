/** Child-server recipes by name: the runner picks one from the `recipe` of its engine spec. */
import { llamaServerRecipe } from "../llama-server/recipe.js";
import { openAiChildRecipe, type OpenAiChildFlavor } from "../openai-child/recipe.js";
import type { ChildServerRecipe } from "./recipe.js";

const FLAVORS: readonly OpenAiChildFlavor[] = ["mlx-lm", "vllm-mlx", "vllm", "openai-compatible"];

const RECIPES: ReadonlyMap<string, ChildServerRecipe> = new Map([
  [llamaServerRecipe.name, llamaServerRecipe],
  ...FLAVORS.map((flavor): [string, ChildServerRecipe] => [flavor, openAiChildRecipe(flavor)]),
]);

export function recipeNamed(name: string): ChildServerRecipe {
  const recipe = RECIPES.get(name);
  if (!recipe) throw new Error(`no child-server recipe named '${name}' (known: ${[...RECIPES.keys()].join(", ")})`);
  return recipe;
}
