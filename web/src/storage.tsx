import { useMemo } from "preact/hooks";
import type uPlot from "uplot";
import { getJson } from "./api.ts";
import { Chart, pairedBarOptions } from "./chart.tsx";
import { bytes } from "./format.ts";
import { usePoll } from "./hooks.ts";
import type { SpaceFigures, StorageReport } from "./types.ts";
import { ErrorLine } from "./ui.tsx";

/** Bytes used by each pool (replicas + deltas) against what full clones of the same desktops would take. */
export function StoragePanel() {
  const report = usePoll(() => getJson<StorageReport>("/v1/storage"), 10_000, []);
  const pools = report.data?.pools ?? [];
  const names = pools.map((p) => p.name);
  const options = useMemo(
    () =>
      pairedBarOptions({
        categories: names,
        series: [
          { label: "used (linked clones)", color: "#1c6dd0" },
          { label: "full-clone equivalent", color: "#adb5bd" },
        ],
        value: bytes,
        what: "pool",
      }),
    [names.join("\u0000")],
  );
  const data = useMemo<uPlot.AlignedData>(
    () => [pools.map((_, i) => i), pools.map((p) => p.usedBytes), pools.map((p) => p.fullCloneBytes)],
    [report.data],
  );
  return (
    <section class="panel" data-testid="storage-panel">
      <h2>
        Storage <small>used against a full-clone equivalent</small>
      </h2>
      <ErrorLine error={report.error} />
      {report.data && (
        <>
          <Totals total={report.data.total} />
          {pools.length > 0 ? (
            <Chart options={options} data={data} testid="storage-chart" />
          ) : (
            <p class="muted">No pools.</p>
          )}
          <table class="grid">
            <thead>
              <tr>
                <th>pool / datastore</th>
                <th class="num">desktops</th>
                <th class="num">replicas</th>
                <th class="num">deltas</th>
                <th class="num">used</th>
                <th class="num">full clones</th>
                <th class="num">saved</th>
                <th class="num">provisioned</th>
              </tr>
            </thead>
            <tbody>
              {pools.map((p) => (
                <Row key={p.poolId} label={`${p.name} (${p.cloneType})`} f={p} />
              ))}
              {report.data.datastores.map((d) => (
                <Row key={d.datastoreId} label={`datastore ${d.datastoreId}`} f={d} />
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

function Totals(props: { total: SpaceFigures }) {
  const t = props.total;
  return (
    <div class="tiles">
      <Tile label="used" value={bytes(t.usedBytes)} />
      <Tile label="full-clone equivalent" value={bytes(t.fullCloneBytes)} />
      <Tile label="saved" value={bytes(t.savedBytes)} />
      <Tile label="provisioned" value={bytes(t.provisionedBytes)} />
      <Tile label="desktops" value={String(t.desktops)} />
    </div>
  );
}

export function Tile(props: { label: string; value: string; testid?: string }) {
  return (
    <div class="tile" data-testid={props.testid}>
      <div class="tile-value">{props.value}</div>
      <div class="tile-label">{props.label}</div>
    </div>
  );
}

function Row(props: { label: string; f: SpaceFigures }) {
  const f = props.f;
  return (
    <tr>
      <td>{props.label}</td>
      <td class="num">{f.desktops}</td>
      <td class="num">{bytes(f.replicaBytes)}</td>
      <td class="num">{bytes(f.deltaBytes)}</td>
      <td class="num">{bytes(f.usedBytes)}</td>
      <td class="num">{bytes(f.fullCloneBytes)}</td>
      <td class={`num ${f.savedBytes < 0 ? "error-text" : ""}`}>{bytes(f.savedBytes)}</td>
      <td class="num">{bytes(f.provisionedBytes)}</td>
    </tr>
  );
}
