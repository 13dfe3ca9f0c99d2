/**
 * Agent runs (docs/agents.md): validates a run, records it, and executes its strategy with steps that go through
 * the server's own generation path (`converse`: scheduler lease per generation, the request's priority class,
 * the chat layer, the server-side tool loop, metrics), not loopback HTTP. Cancellation and timeouts abort the
 * run's signal: in-flight generations stop in the runner and steps still waiting never start.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { chatCompletionRequestSchema } from "../api/openai/schemas.js";
import type { CreateRunRequest, RunSpec } from "../api/agents/schemas.js";
import { chatJobFrom } from "../chat/request.js";
import { LmxError } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { RequestRecorder } from "../metrics/request.js";
import type { TraceContext } from "../metrics/trace.js";
import type { Priority } from "../scheduler/priority.js";
import type { ChatOutcomeSink } from "../serving/chat.js";
import { samplingOf } from "../serving/chat-completion.js";
import type { ServingContext } from "../serving/context.js";
import { converse, DEFAULT_MAX_LOOP_STEPS, type ExecutedToolCall } from "../serving/conversation.js";
import { GENERATION_ENDPOINTS, resolveServable } from "../serving/generate.js";
import { AgentRunStore, TERMINAL_STATUSES, type RunRecord, type RunStatus, type StepRecord } from "../state/agent-runs.js";
import type { StateDatabase } from "../state/database.js";
import { AgentEventBus } from "./bus.js";
import type { AgentsConfig } from "./config.js";
import { chooseAutoModel } from "./model-choice.js";
import { RoleCatalog, type Role } from "./roles.js";
import { helperRoles, STRATEGY_RUNNERS, type StepRequest } from "./strategies.js";

/** A constrained answer (router, judge) needs room for its JSON whatever the step budget. */
const MIN_CONSTRAINED_TOKENS = 128;

export interface AgentRunsDeps {
  serving: ServingContext;
  storage: StateDatabase;
  config: AgentsConfig;
  metrics: { startRequest(arrivalMs: number): RequestRecorder };
  outcomes: ChatOutcomeSink | null;
  log: Logger;
  maxLoopSteps?: number;
}

export interface CreateRunInput extends CreateRunRequest {
  priority: Priority;
  trace: TraceContext;
}

interface ActiveRun {
  run: RunRecord;
  controller: AbortController;
  /** Set once the run's terminal state is written: later step outcomes only close their own records. */
  ended: boolean;
  running: Map<number, StepRecord>;
  nextStep: number;
  models: Map<string, ModelDescriptor>;
  log: Logger;
}

class RunEnded extends Error {}

export class AgentRuns {
  readonly store: AgentRunStore;
  readonly bus: AgentEventBus;
  readonly roles: RoleCatalog;
  private readonly active = new Map<string, ActiveRun>();

  constructor(private readonly deps: AgentRunsDeps) {
    this.store = new AgentRunStore(deps.storage, deps.config.max_runs_kept);
    this.bus = new AgentEventBus(this.store);
    this.roles = new RoleCatalog(deps.config.roles);
    const interrupted = this.store.interruptUnfinished(Date.now());
    if (interrupted.length > 0)
      deps.log.warn({ runs: interrupted }, "agent runs left unfinished by the previous gateway marked failed (interrupted)");
    this.store.prune();
  }

  /** Validates, records (status queued) and starts a run; refusals are thrown before anything is stored. */
  async create(input: CreateRunInput): Promise<RunRecord> {
    const { spec, at } = input;
    if (this.deps.serving.state.shuttingDown) throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
    const roles = spec.roles.map((name, i) => this.roleOrRefuse(name, `${at}.roles[${i}]`));
    for (const { field, role } of helperRoles(spec)) this.roleOrRefuse(role, `${at}.${field}`);
    if (spec.strategy === "router" && new Set(spec.roles).size < 1)
      throw new LmxError("invalid_value", "router needs roles to choose from", { param: `${at}.roles` });
    roles.forEach((role, i) => this.checkSkills(role, `${at}.roles[${i}]`));
    const choice =
      spec.model === "auto"
        ? await chooseAutoModel(this.deps.serving, this.deps.config.default_model)
        : { id: spec.model, reason: "named by the request" };
    const { model } = await this.resolve(choice.id, `${at}.model`);
    const now = Date.now();
    const run: RunRecord = {
      id: `run_${randomBytes(12).toString("hex")}`,
      status: "queued",
      strategy: spec.strategy,
      prompt: spec.prompt,
      roles: spec.roles,
      model: spec.model,
      resolvedModel: model.id,
      modelReason: choice.reason,
      maxParallelism: spec.max_parallelism,
      timeoutSec: spec.timeout_sec ?? this.deps.config.default_timeout_sec,
      priority: input.priority,
      traceparent: input.trace.traceparent,
      options: optionsOf(spec),
      metadata: input.metadata,
      createdAt: now,
      startedAt: null,
      finishedAt: null,
      reason: null,
      error: null,
      output: null,
      decision: null,
    };
    this.store.createRun(run);
    this.bus.publish(run.id, "run.queued", { id: run.id, status: "queued" });
    const log = this.deps.log.child({ run_id: run.id, trace_id: input.trace.traceId, traceparent: run.traceparent, priority: input.priority });
    const active: ActiveRun = {
      run,
      controller: new AbortController(),
      ended: false,
      running: new Map(),
      nextStep: 0,
      models: new Map([[model.id, model]]),
      log,
    };
    this.active.set(run.id, active);
    void this.execute(active, spec, input.trace);
    return { ...run };
  }

  /** Ends a queued or running run as cancelled at once; its generations are aborted. */
  cancel(id: string): RunRecord {
    const active = this.active.get(id);
    if (!active || active.ended) {
      const stored = this.store.getRun(id);
      if (!stored) throw notFound(id);
      throw new LmxError("agent_run_finished", `agent run '${id}' already ended (${stored.status}); there is nothing to cancel`, { param: "id" });
    }
    this.end(active, "cancelled", "cancelled", null);
    return { ...active.run };
  }

  get(id: string): { run: RunRecord; steps: StepRecord[] } {
    const run = this.active.get(id)?.run ?? this.store.getRun(id);
    if (!run) throw notFound(id);
    return { run: { ...run }, steps: this.store.steps(id) };
  }

  /** Server shutdown: unfinished runs end as failed (interrupted), as they would be found at the next start. */
  shutdown(): void {
    for (const active of [...this.active.values()]) {
      this.end(active, "failed", "interrupted", { code: "interrupted", message: "the gateway stopped while this run was unfinished" });
    }
    this.bus.close();
  }

  private async execute(active: ActiveRun, spec: RunSpec, trace: TraceContext): Promise<void> {
    const { run, controller } = active;
    const timer = setTimeout(
      () => this.end(active, "timed_out", "timeout", { code: "timeout", message: `the run exceeded timeout_sec (${run.timeoutSec})` }),
      run.timeoutSec * 1000,
    );
    timer.unref();
    try {
      await Promise.resolve();
      if (active.ended) return;
      run.status = "running";
      run.startedAt = Date.now();
      this.store.saveRun(run);
      this.bus.publish(run.id, "run.started", { id: run.id, status: "running", model: run.resolvedModel });
      active.log.info({ strategy: run.strategy, roles: run.roles, model: run.resolvedModel }, "agent run started");
      const limiter = new Limiter(run.maxParallelism, controller.signal);
      const result = await STRATEGY_RUNNERS[spec.strategy](spec, {
        step: (request) => this.step(active, spec, trace, request),
        limit: (task) => limiter.run(task),
      });
      if (active.ended) return;
      run.output = result.output;
      run.decision = result.decision;
      this.end(active, "completed", null, null);
    } catch (error) {
      if (active.ended) return;
      const failure = error instanceof LmxError ? error : new LmxError("internal_error", (error as Error)?.message ?? String(error));
      this.end(active, "failed", failure.message, { code: failure.code, message: failure.message });
    } finally {
      clearTimeout(timer);
      this.active.delete(run.id);
    }
  }

  /** Writes the terminal state once, aborts what still runs, and closes the steps in flight with it. */
  private end(active: ActiveRun, status: RunStatus, reason: string | null, error: { code: string; message: string } | null): void {
    if (active.ended) return;
    active.ended = true;
    const { run } = active;
    active.controller.abort();
    const now = Date.now();
    // steps cut by the run's end were cancelled (a sibling's failure included); an interrupted one failed, as at a restart
    const interrupted = reason === "interrupted";
    for (const step of active.running.values()) {
      this.store.saveStep({
        ...step,
        status: interrupted ? "failed" : "cancelled",
        finishedAt: now,
        error: interrupted && error ? error : { code: "cancelled", message: `the run ended (${status}) while this step ran` },
      });
    }
    active.running.clear();
    run.status = status;
    run.reason = reason;
    run.error = error;
    run.finishedAt = now;
    this.store.saveRun(run);
    this.bus.publish(run.id, `run.${status}`, { id: run.id, status, reason, error, output: run.output, decision: run.decision });
    active.log.info({ status, reason, duration_ms: now - (run.startedAt ?? run.createdAt) }, "agent run ended");
  }

  private async step(active: ActiveRun, spec: RunSpec, trace: TraceContext, request: StepRequest): Promise<string> {
    const { run, controller } = active;
    const signal = controller.signal;
    if (signal.aborted || active.ended) throw new RunEnded();
    const role = this.roleOrRefuse(request.role, "roles");
    const model = role.model === "auto" ? active.models.get(run.resolvedModel!)! : await this.modelFor(active, role.model);
    const index = active.nextStep++;
    // each step is a span of the run's trace: the runner's request and the log lines carry it
    const traceparent = `00-${trace.traceId}-${randomBytes(8).toString("hex")}-${trace.flags}`;
    const step: StepRecord = {
      runId: run.id,
      index,
      kind: request.kind,
      role: role.name,
      model: model.id,
      status: "running",
      input: request.input,
      output: null,
      promptTokens: 0,
      completionTokens: 0,
      toolCalls: [],
      error: null,
      traceparent,
      startedAt: Date.now(),
      finishedAt: null,
    };
    active.running.set(index, step);
    this.store.saveStep(step);
    this.bus.publish(run.id, "step.started", { step: index, kind: step.kind, role: step.role, model: model.id, traceparent });
    const log = active.log.child({ step: index, role: role.name, step_traceparent: traceparent });
    log.debug({ kind: step.kind, model: model.id }, "agent step started");

    const recorder = this.deps.metrics.startRequest(performance.now());
    recorder.model = model.id;
    const maxTokens = Math.max(
      spec.max_tokens ?? role.sampling.max_tokens ?? this.deps.config.step_max_tokens,
      request.schema ? MIN_CONSTRAINED_TOKENS : 1,
    );
    const body = chatCompletionRequestSchema.parse({
      model: model.id,
      messages: [
        { role: "system", content: role.system_prompt },
        { role: "user", content: request.input },
      ],
      max_tokens: maxTokens,
      ...(role.sampling.temperature !== undefined ? { temperature: role.sampling.temperature } : {}),
      ...(role.sampling.top_p !== undefined ? { top_p: role.sampling.top_p } : {}),
      ...(role.sampling.top_k !== undefined ? { top_k: role.sampling.top_k } : {}),
      ...(role.sampling.seed !== undefined ? { seed: role.sampling.seed } : {}),
      ...(role.sampling.ignore_eos ? { ignore_eos: true } : {}),
      ...(role.skills.length > 0 ? { tools: role.skills.map((name) => ({ type: "skill", skill: { name } })) } : {}),
      ...(request.schema
        ? { response_format: { type: "json_schema", json_schema: { name: request.schema.name, schema: request.schema.schema } } }
        : {}),
    });
    const executed: ExecutedToolCall[] = [];
    let outcome: Awaited<ReturnType<typeof converse>> | null = null;
    let thrown: LmxError | null = null;
    try {
      const job = chatJobFrom(body, this.deps.serving.skills ?? undefined);
      outcome = await converse(
        this.deps.serving,
        {
          model,
          job,
          sampling: samplingOf(body),
          signal,
          priority: run.priority as Priority,
          recorder,
          runnerHeaders: { traceparent },
          caller: `agent:${run.id}`,
          maxSteps: this.deps.maxLoopSteps ?? DEFAULT_MAX_LOOP_STEPS,
        },
        {
          event: (event) => {
            if ((event.type === "content" || event.type === "reasoning") && event.text) {
              this.bus.publish(run.id, "step.delta", { step: index, type: event.type, text: event.text }, false);
            }
            return true;
          },
          callStarted: (callIndex, call) => {
            this.bus.publish(run.id, "step.tool_call", { step: index, index: callIndex, id: call.id, name: call.name, arguments: call.arguments });
            return true;
          },
          callFinished: (callIndex, result) => {
            executed.push(result);
            this.bus.publish(run.id, "step.tool_result", { step: index, index: callIndex, ...result });
            return true;
          },
        },
        this.deps.outcomes,
      );
    } catch (error) {
      thrown = signal.aborted ? null : error instanceof LmxError ? error : new LmxError("internal_error", (error as Error)?.message ?? String(error));
    }
    const now = performance.now();
    step.toolCalls = executed;
    step.finishedAt = Date.now();
    if (outcome?.kind === "finished") {
      step.status = "completed";
      step.output = outcome.content;
      step.promptTokens = outcome.usage.promptTokens;
      step.completionTokens = outcome.usage.completionTokens;
      recorder.finish(200, "", now);
    } else if (thrown || outcome?.kind === "failed") {
      const error = thrown ?? (outcome as { error: LmxError }).error;
      step.status = "failed";
      step.error = { code: error.code, message: error.message };
      recorder.finish(error.status, error.code, now);
    } else {
      step.status = "cancelled";
      step.error = { code: "cancelled", message: "the run ended while this step ran" };
      recorder.finish(499, "client_closed", now);
    }
    // a run that already ended closed this step's record itself
    if (!active.running.delete(index)) throw new RunEnded();
    this.store.saveStep(step);
    this.bus.publish(run.id, "step.finished", {
      step: index,
      role: step.role,
      status: step.status,
      output: step.output,
      usage: { prompt_tokens: step.promptTokens, completion_tokens: step.completionTokens },
      error: step.error,
      duration_ms: step.finishedAt - step.startedAt,
    });
    log.debug({ status: step.status, completion_tokens: step.completionTokens }, "agent step finished");
    if (step.status === "completed") return step.output ?? "";
    if (step.status === "failed") throw thrown ?? (outcome as { error: LmxError }).error;
    throw new RunEnded();
  }

  private roleOrRefuse(name: string, param: string): Role {
    const role = this.roles.get(name);
    if (!role) throw new LmxError("invalid_value", `unknown role '${name.slice(0, 64)}'; roles: ${this.roles.names().join(", ")}`, { param });
    return role;
  }

  private checkSkills(role: Role, param: string): void {
    for (const skill of role.skills) {
      if (!this.deps.serving.skills?.get(skill)) {
        throw new LmxError("invalid_value", `role '${role.name}' allows skill '${skill}', which this server does not have (GET /v1/skills)`, {
          param,
        });
      }
    }
  }

  private async resolve(name: string, param: string): Promise<{ model: ModelDescriptor }> {
    try {
      return await resolveServable(
        this.deps.serving,
        name,
        GENERATION_ENDPOINTS["/v1/chat/completions"].accepts,
        this.deps.metrics.startRequest(performance.now()),
      );
    } catch (error) {
      if (error instanceof LmxError && error.param === "model") throw new LmxError(error.code, error.message, { param });
      throw error;
    }
  }

  private async modelFor(active: ActiveRun, name: string): Promise<ModelDescriptor> {
    const known = active.models.get(name);
    if (known) return known;
    const { model } = await this.resolve(name, "model");
    active.models.set(name, model);
    return model;
  }
}

export function isTerminal(status: RunStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

function notFound(id: string): LmxError {
  return new LmxError("agent_run_not_found", `no agent run has the id '${id.slice(0, 80)}'`, { param: "id" });
}

function optionsOf(spec: RunSpec): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const { field, role } of helperRoles(spec)) options[field] = role;
  if (spec.strategy === "vote" && spec.roles.length === 1) options["samples"] = spec.samples ?? 3;
  if (spec.max_tokens !== undefined) options["max_tokens"] = spec.max_tokens;
  return options;
}

/** At most `size` tasks at once; tasks still waiting when the signal aborts never start. */
class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly size: number,
    private readonly signal: AbortSignal,
  ) {
    // woken waiters see the abort and leave, each handing its place on
    signal.addEventListener("abort", () => this.waiting.shift()?.(), { once: true });
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    // a finished task hands its place straight to the next waiter, so a newcomer cannot slip in between
    if (this.running >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      if (this.signal.aborted) throw new RunEnded();
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
