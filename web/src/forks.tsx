/**
 * Forks of users' data kept at a failover (listed by `GET /v1/dr/replication`, held in this
 * region): keep the current history (the fork is dropped) or the fork (its content becomes the
 * user's next version), and what the API answered.
 */
import { useState } from "preact/hooks";
import { ApiError, enc, getJson, postJson } from "./api.ts";
import { bytes, time } from "./format.ts";
import { usePoll } from "./hooks.ts";
import type { Replication, UserDataFork } from "./types.ts";
import { ErrorLine } from "./ui.tsx";

type Keep = NonNullable<UserDataFork["keep"]>;
type Outcome = { keep: Keep; status: number; fork: UserDataFork } | { keep: Keep; error: ApiError };

const causes: Record<UserDataFork["cause"], string> = {
  "committed-while-fenced": "a session ended here after the failover",
  "superseded-by-failover": "versions the other region's later history replaced",
  "committed-on-replaced-version": "a session on a version that history replaced",
};

export function ForksPanel() {
  const status = usePoll(() => getJson<Replication>("/v1/dr/replication"), 5000, []);
  const [outcomes, setOutcomes] = useState<ReadonlyMap<string, Outcome>>(new Map());
  const [busy, setBusy] = useState<string | undefined>(undefined);
  const forks = status.data?.forks ?? [];
  const resolve = async (forkId: string, keep: Keep) => {
    setBusy(forkId);
    let outcome: Outcome;
    try {
      const answer = await postJson<UserDataFork>(`/v1/dr/forks/${enc(forkId)}/resolve`, { keep });
      outcome = { keep, status: answer.status, fork: answer.body };
    } catch (err) {
      outcome = { keep, error: err instanceof ApiError ? err : new ApiError(0, { title: String(err) }) };
    }
    setOutcomes((m) => new Map([...m, [forkId, outcome]]));
    setBusy(undefined);
    status.reload();
  };
  return (
    <section class="panel" data-testid="forks-panel">
      <h2>
        Forks of users' data <small>kept at a failover, held in this region, every 5 s</small>
      </h2>
      <ErrorLine error={status.error} />
      {status.data && forks.length === 0 && <p class="muted">No forks here.</p>}
      {forks.length > 0 && (
        <table class="grid">
          <thead>
            <tr>
              <th>user</th>
              <th>state</th>
              <th>why</th>
              <th class="num">base + forked</th>
              <th class="num">epoch</th>
              <th class="num">size</th>
              <th>kept since</th>
              <th>resolution</th>
            </tr>
          </thead>
          <tbody>
            {forks.map((f) => (
              <tr key={f.forkId} data-fork={f.forkId} data-user={f.userId} data-state={f.state}>
                <td>
                  {f.userId}
                  <div class="muted small mono nowrap">{f.forkId}</div>
                </td>
                <td>
                  <span class={`pill fork-${f.state.toLowerCase()}`}>{f.state}</span>
                </td>
                <td>
                  {causes[f.cause]}
                  {f.sessionId && <div class="muted small mono break">{f.sessionId}</div>}
                </td>
                <td class="num">
                  v{f.baseVersion} +{" "}
                  {f.versions?.length ? f.versions.map((v) => `v${v}`).join(", ") : "its session"}
                </td>
                <td class="num">{f.epoch}</td>
                <td class="num nowrap">{bytes(f.sizeBytes)}</td>
                <td class="nowrap">{time(f.createdAt)}</td>
                <td>
                  <Resolution
                    fork={f}
                    outcome={outcomes.get(f.forkId)}
                    busy={busy === f.forkId}
                    onResolve={(keep) => void resolve(f.forkId, keep)}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const keepLabel = (keep: Keep) => (keep === "fork" ? "keep the fork" : "keep the current version");

function Resolution(props: {
  fork: UserDataFork;
  outcome: Outcome | undefined;
  busy: boolean;
  onResolve: (keep: Keep) => void;
}) {
  const f = props.fork;
  const o = props.outcome;
  return (
    <div class="resolution">
      {f.state === "OPEN" && (
        <div class="buttons">
          <button type="button" disabled={props.busy} onClick={() => props.onResolve("current")}>
            Keep current
          </button>
          <button
            type="button"
            class="secondary"
            disabled={props.busy}
            onClick={() => props.onResolve("fork")}
          >
            Keep fork
          </button>
        </div>
      )}
      {f.state !== "OPEN" && (
        <div class="small">
          {f.state === "RESOLVED" ? "resolved" : "resolving"}: {f.keep ? keepLabel(f.keep) : "—"}
          {f.resolvedVersion !== undefined && ` (now v${f.resolvedVersion})`}
          {f.resolvedAt && <span class="muted"> at {time(f.resolvedAt)}</span>}
        </div>
      )}
      {o && (
        <div class="small" data-testid="fork-outcome" data-status={"error" in o ? o.error.status : o.status}>
          {"error" in o ? (
            <>
              <span class="muted">{keepLabel(o.keep)}:</span> <ErrorLine error={o.error} />
            </>
          ) : (
            <span class="ok-text">
              {keepLabel(o.keep)}: answered {o.status}
              {o.status === 202 && f.state !== "RESOLVED" ? " (accepted), resolving…" : ""}
            </span>
          )}
        </div>
      )}
    </div>
  );
}
