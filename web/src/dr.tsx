import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type uPlot from "uplot";
import { getJson } from "./api.ts";
import { Chart, lineOptions } from "./chart.tsx";
import { bytes, duration, time } from "./format.ts";
import { usePoll } from "./hooks.ts";
import { Tile } from "./storage.tsx";
import type { Readiness, Replication } from "./types.ts";
import { ErrorLine } from "./ui.tsx";

/** The last readiness check: users' data, image versions and pools verified in DR without desktops. */
export function ReadinessPanel() {
  const status = usePoll(() => getJson<Readiness>("/v1/dr/readiness"), 10_000, []);
  const r = status.data;
  const report = r?.report;
  return (
    <section class="panel" data-testid="readiness-panel">
      <h2>
        Readiness{" "}
        <small>{r ? `checked every ${duration(r.periodMs)}, ${r.sampleUsers} users at a time` : ""}</small>
      </h2>
      <ErrorLine error={status.error} />
      {r && (
        <div class="tiles">
          <Tile
            label={r.overdue ? "overdue: no recent check" : `checked ${time(report?.checkedAt)}`}
            value={report ? (report.ok ? "ready" : `${report.failures.length} failed`) : "never"}
          />
          <Tile label="current RPO" value={duration(r.currentRpoMs)} />
          <Tile
            label="users sampled"
            value={report ? `${report.users.length} / ${report.usersTotal}` : "—"}
          />
          <Tile label="image versions" value={String(report?.imageVersionsChecked ?? "—")} />
          <Tile label="pools" value={String(report?.poolsChecked ?? "—")} />
        </div>
      )}
      {report && report.failures.length > 0 && (
        <table class="grid">
          <thead>
            <tr>
              <th>what</th>
              <th>id</th>
              <th>why</th>
            </tr>
          </thead>
          <tbody>
            {report.failures.map((f) => (
              <tr key={`${f.kind}:${f.id}`} class="error-text">
                <td>{f.kind}</td>
                <td class="mono">{f.id}</td>
                <td>{f.reason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** This region's replication to its peer: the backlog now, and its lag as seen since the page opened. */
export function ReplicationPanel() {
  const status = usePoll(() => getJson<Replication>("/v1/dr/replication"), 5000, []);
  const history = useRef<{ t: number; lag: number; pending: number }[]>([]);
  const [data, setData] = useState<uPlot.AlignedData>([[], [], []]);
  useEffect(() => {
    const r = status.data;
    if (!r) return;
    history.current = [
      ...history.current.slice(-359),
      { t: Date.now() / 1000, lag: r.oldestPendingAgeMs / 1000, pending: r.pendingChanges },
    ];
    const h = history.current;
    setData([h.map((p) => p.t), h.map((p) => p.lag), h.map((p) => p.pending)]);
  }, [status.data]);
  const options = useMemo(
    () =>
      lineOptions({
        series: [
          { label: "oldest pending change (s)", color: "#e8590c" },
          { label: "pending changes", color: "#1c6dd0" },
        ],
        value: (v) => String(Math.round(v * 10) / 10),
      }),
    [],
  );
  const r = status.data;
  return (
    <section class="panel" data-testid="replication-panel">
      <h2>
        Replication <small>{r ? `${r.region} → ${r.peer ?? "no peer"}` : ""}, every 5 s</small>
      </h2>
      <ErrorLine error={status.error} />
      {r && (
        <>
          <div class="tiles">
            <Tile label="pending changes" value={String(r.pendingChanges)} />
            <Tile label="oldest pending" value={r.pendingChanges ? duration(r.oldestPendingAgeMs) : "—"} />
            <Tile label="RPO p50" value={duration(r.rpoP50Ms)} />
            <Tile label="RPO p99" value={duration(r.rpoP99Ms)} />
            <Tile label="shipped" value={bytes(r.bytesShipped)} />
            <Tile label="standby pools here" value={String(r.dr.standbyPools.length)} />
          </div>
          <Chart options={options} data={data} testid="replication-chart" />
          {r.users.length > 0 && (
            <table class="grid">
              <thead>
                <tr>
                  <th>user</th>
                  <th class="num">version</th>
                  <th class="num">replicated</th>
                  <th class="num">behind</th>
                  <th>last change</th>
                  <th>oldest unreplicated</th>
                </tr>
              </thead>
              <tbody>
                {r.users.map((u) => (
                  <tr key={u.userId}>
                    <td>{u.userId}</td>
                    <td class="num">{u.version}</td>
                    <td class="num">{u.replicatedVersion}</td>
                    <td class={`num ${u.lagVersions > 0 ? "error-text" : ""}`}>{u.lagVersions}</td>
                    <td class="nowrap">{time(u.lastChangeAt)}</td>
                    <td class="nowrap">{time(u.oldestUnreplicatedAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
