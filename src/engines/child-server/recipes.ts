/** Child-server recipes by name: the runner picks one from the `recipe` of its engine spec. */
import { llamaServerRecipe } from "../llama-server/recipe.js";
import type { ChildServerRecipe } from "./recipe.js";

const RECIPES: ReadonlyMap<string, ChildServerRecipe> = new Map([[llamaServerRecipe.name, llamaServerRecipe]]);

export function recipeNamed(name: string): ChildServerRecipe {
  const recipe = RECIPES.get(name);
  if (!recipe) throw new Error(`no child-server recipe named '${name}' (known: ${[...RECIPES.keys()].join(", ")})`);
  return recipe;
}
