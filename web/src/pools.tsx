import { useEffect, useState } from "preact/hooks";
import { desktopStates } from "../../shared/domain/desktop-state.ts";
import { enc, getBlob, getJson } from "./api.ts";
import { bytes, duration, percent, time } from "./format.ts";
import { usePoll } from "./hooks.ts";
import { LogonForm } from "./logon.tsx";
import type { DesktopRow, DesktopState, LogonAnswer, Pool, PoolDetail } from "./types.ts";
import { ErrorLine } from "./ui.tsx";

export const stateColors: Record<DesktopState, string> = {
  PROVISIONING: "#9aa5b1",
  STARTING: "#7cb3e0",
  AVAILABLE: "#2f9e44",
  // Free but powered off (disk kept): AVAILABLE's green, hatched (see stateFill).
  STOPPED: "#2f9e44",
  ASSIGNED: "#1c6dd0",
  REFRESHING: "#f59f00",
  RECOMPOSING: "#ae3ec9",
  UNREACHABLE: "#e8590c",
  DELETING: "#868e96",
  ERROR: "#e03131",
};

/** A state's fill: its colour; STOPPED desktops (free, their VM off) are hatched, not solid. */
export const stateFill = (s: DesktopState): string =>
  s === "STOPPED"
    ? `repeating-linear-gradient(135deg, ${stateColors.STOPPED} 0 3px, #d3f9d8 3px 6px)`
    : stateColors[s];

const stateTitles: Partial<Record<DesktopState, string>> = {
  STOPPED: "free, its VM powered off (disk kept): started again when needed",
};

/** A pool's desktops by state, as one stacked bar and a legend with the counts. */
export function StateBar(props: { poolId: string; counts: Record<DesktopState, number> }) {
  const total = desktopStates.reduce((sum, s) => sum + (props.counts[s] ?? 0), 0);
  return (
    <div class="statebar" data-testid="state-bar" data-pool={props.poolId}>
      <div class="bar" role="img" aria-label={`${total} desktops by state`}>
        {desktopStates
          .filter((s) => (props.counts[s] ?? 0) > 0)
          .map((s) => (
            <span
              key={s}
              class="seg"
              title={`${s}: ${props.counts[s]}${stateTitles[s] ? ` (${stateTitles[s]})` : ""}`}
              style={{ width: `${percent(props.counts[s] ?? 0, total)}%`, background: stateFill(s) }}
            />
          ))}
      </div>
      <ul class="legend">
        {desktopStates.map((s) => (
          <li
            key={s}
            data-state={s}
            data-count={props.counts[s] ?? 0}
            class={props.counts[s] ? "" : "zero"}
            title={stateTitles[s]}
          >
            <i style={{ background: stateFill(s) }} />
            {s === "STOPPED" ? "stopped (powered off)" : s.toLowerCase()} <b>{props.counts[s] ?? 0}</b>
          </li>
        ))}
      </ul>
    </div>
  );
}

async function loadPools(): Promise<PoolDetail[]> {
  const { items } = await getJson<{ items: Pool[] }>("/v1/pools");
  return Promise.all(items.map((p) => getJson<PoolDetail>(`/v1/pools/${enc(p.poolId)}`)));
}

/** Every pool of the tenant with its desktops by state, every 2 s. */
export function PoolsPanel(props: { selected: string | undefined; onSelect: (poolId: string) => void }) {
  const pools = usePoll(loadPools, 2000, []);
  return (
    <section class="panel" data-testid="pools-panel">
      <h2>
        Pools <small>refreshed every 2 s</small>
      </h2>
      <ErrorLine error={pools.error} />
      {pools.data?.length === 0 && <p class="muted">No pools yet.</p>}
      <table class="pools">
        <tbody>
          {pools.data?.map((p) => (
            <tr key={p.poolId} class={props.selected === p.poolId ? "selected" : ""} data-pool-row={p.poolId}>
              <td class="name">
                <button type="button" class="link" onClick={() => props.onSelect(p.poolId)}>
                  {p.name}
                </button>
                <div class="muted mono">{p.poolId}</div>
                <div class="muted small">
                  {p.assignment} · {p.cloneType} · v{p.imageVersion} · size {p.size}
                  {p.maxSize !== undefined ? ` (self-sizing ${p.minSize ?? 0}–${p.maxSize})` : ""}
                  {p.state !== "ACTIVE" ? ` · ${p.state}` : ""}
                </div>
              </td>
              <td class="grow">
                <StateBar poolId={p.poolId} counts={p.desktopCounts} />
                {p.recompose && <RecomposeBar progress={p.recompose} />}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function RecomposeBar(props: { progress: NonNullable<PoolDetail["recompose"]> }) {
  const r = props.progress;
  const total = r.done + r.pending + r.failed;
  return (
    <div class="recompose" data-testid="recompose">
      <div class="muted">
        recompose v{r.fromVersion} → v{r.toVersion} since {time(r.startedAt)}: {r.done} done, {r.pending}{" "}
        pending, {r.failed} failed
      </div>
      <div class="bar thin">
        <span
          class="seg"
          style={{ width: `${percent(r.done, total)}%`, background: stateColors.AVAILABLE }}
        />
        <span class="seg" style={{ width: `${percent(r.failed, total)}%`, background: stateColors.ERROR }} />
      </div>
    </div>
  );
}

/** A session's screen, fetched with the key and shown as a blob URL; refreshed every 5 s. */
function Screenshot(props: { sessionId: string }) {
  const [url, setUrl] = useState<string | undefined>(undefined);
  const shot = usePoll(() => getBlob(`/v1/sessions/${enc(props.sessionId)}/screenshot`), 5000, [
    props.sessionId,
  ]);
  useEffect(() => {
    if (!shot.data) return;
    const made = URL.createObjectURL(shot.data);
    setUrl(made);
    return () => URL.revokeObjectURL(made);
  }, [shot.data]);
  if (shot.error && !url)
    return (
      <span class="muted small" title={shot.error.message}>
        {shot.error.problem.title ?? "no screen"}
      </span>
    );
  return url ? (
    <img class="shot" src={url} alt={`screen of ${props.sessionId}`} />
  ) : (
    <span class="muted">…</span>
  );
}

/** One pool: its desktops (state, host, datastore, delta) and screens, recompose progress, a logon form. */
export function PoolDesktops(props: { poolId: string; onLogon: (answer: LogonAnswer) => void }) {
  const pool = usePoll(() => getJson<PoolDetail>(`/v1/pools/${enc(props.poolId)}`), 2000, [props.poolId]);
  const desktops = usePoll(
    () => getJson<{ items: DesktopRow[] }>(`/v1/pools/${enc(props.poolId)}/desktops`),
    2000,
    [props.poolId],
  );
  const rows = [...(desktops.data?.items ?? [])].sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0));
  return (
    <section class="panel" data-testid="pool-desktops" data-pool={props.poolId}>
      <h2>
        {pool.data?.name ?? props.poolId} <small class="mono">{props.poolId}</small>
      </h2>
      <ErrorLine error={pool.error ?? desktops.error} />
      {pool.data && <SizingSettings pool={pool.data} />}
      {pool.data?.recompose && <RecomposeBar progress={pool.data.recompose} />}
      <LogonForm poolId={props.poolId} onLogon={props.onLogon} />
      <table class="grid">
        <thead>
          <tr>
            <th>desktop</th>
            <th>state</th>
            <th>user</th>
            <th>host</th>
            <th>datastore</th>
            <th>image</th>
            <th class="num">delta</th>
            <th>screen</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((d) => (
            <tr key={d.desktopId} data-desktop={d.desktopId}>
              <td class="mono">{d.desktopId}</td>
              <td>
                <span
                  class={`pill state-${d.state.toLowerCase()}`}
                  // STOPPED: a pale pill with a dashed border (queue.css); its text stays readable.
                  style={d.state === "STOPPED" ? undefined : { background: stateColors[d.state] }}
                  title={stateTitles[d.state]}
                >
                  {d.state}
                </span>
                {d.state === "STOPPED" && <div class="small muted">powered off, disk kept</div>}
                {d.error && <div class="small error-text">{d.error}</div>}
              </td>
              <td>{d.userId ?? "—"}</td>
              <td class="mono">{d.console ? `${d.console.host}:${d.console.port}` : "—"}</td>
              <td class="mono">{d.datastoreId}</td>
              <td>
                v{d.imageVersion} {d.cloneType ?? ""}
              </td>
              <td class="num">{bytes(d.deltaBytes)}</td>
              <td>{d.sessionId ? <Screenshot sessionId={d.sessionId} /> : <span class="muted">—</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** How a pool sizes itself (a pool with maxSize), with the API's defaults for what was not set. */
function SizingSettings(props: { pool: PoolDetail }) {
  const p = props.pool;
  if (p.maxSize === undefined)
    return (
      <p class="muted small" data-testid="sizing" data-self-sizing="false">
        Fixed size: {p.size} desktops.
      </p>
    );
  const free = (p.desktopCounts.AVAILABLE ?? 0) + (p.desktopCounts.STOPPED ?? 0);
  const settings: [string, string, string][] = [
    ["desktops now", String(p.size), `${free} free, ${p.desktopCounts.STOPPED ?? 0} of them stopped`],
    ["minSize", String(p.minSize ?? 0), "never fewer"],
    ["maxSize", String(p.maxSize), "never more"],
    ["spare", String(p.spare ?? 0), "free desktops kept ready"],
    [
      "poweredOnSpare",
      p.poweredOnSpare === undefined ? "all" : String(p.poweredOnSpare),
      "free desktops left running; the others STOPPED",
    ],
    // The API's defaults (shared/domain/pool-sizing.ts, not bundled: it needs node:crypto).
    ["idleSeconds", duration((p.idleSeconds ?? 600) * 1000), "extra free desktops go after"],
    [
      "ticketTimeoutSeconds",
      duration((p.ticketTimeoutSeconds ?? 300) * 1000),
      "a queued logon expires after",
    ],
  ];
  return (
    <div class="tiles sizing" data-testid="sizing" data-self-sizing="true">
      {settings.map(([name, value, hint]) => (
        <div class="tile" key={name} data-setting={name} data-value={value}>
          <div class="tile-value">{value}</div>
          <div class="tile-label mono">{name}</div>
          <div class="tile-label">{hint}</div>
        </div>
      ))}
    </div>
  );
}
