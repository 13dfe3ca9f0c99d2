/**
 * The default backend preference for this platform (issue 20): on Apple Silicon the MLX servers first (vllm-mlx,
 * then mlx_lm.server), then llama.cpp; elsewhere llama-server, then vLLM (Linux + CUDA, when installed), then
 * node-llama-cpp. A name whose backend is absent here is skipped, so one list per platform is enough.
 */
export function defaultBackendOrder(platform: NodeJS.Platform = process.platform, arch: string = process.arch): string[] {
  if (platform === "darwin" && arch === "arm64") return ["vllm-mlx", "mlx-lm", "llama-server", "llama.cpp", "llama.cpp-cpu"];
  return ["llama-server", "vllm", "llama.cpp", "llama.cpp-cpu"];
}
