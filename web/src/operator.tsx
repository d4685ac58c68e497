import { getJson } from "./api.ts";
import { bytes, percent } from "./format.ts";
import { usePoll } from "./hooks.ts";
import type { Datastore } from "./types.ts";
import { ErrorLine } from "./ui.tsx";

const GiB = 1024 ** 3;

/** The operator's view: the region's datastores and how much of them is provisioned. */
export function DatastoresPanel() {
  const list = usePoll(() => getJson<{ items: Datastore[] }>("/v1/admin/datastores"), 5000, []);
  return (
    <section class="panel" data-testid="datastores-panel">
      <h2>
        Datastores <small>provisioned against capacity × overcommit, every 5 s</small>
      </h2>
      <ErrorLine error={list.error} />
      <table class="grid">
        <thead>
          <tr>
            <th>datastore</th>
            <th>host</th>
            <th>path</th>
            <th class="num">capacity</th>
            <th class="num">overcommit</th>
            <th class="num">provisioned</th>
            <th class="num">free (effective)</th>
            <th class="grow">used</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.items.map((d) => {
            const limit = d.capacityGiB * GiB * d.overcommit;
            const used = d.provisionedPercent ?? percent(d.provisionedBytes ?? 0, limit);
            return (
              <tr key={d.datastoreId} data-datastore={d.datastoreId}>
                <td class="mono">{d.datastoreId}</td>
                <td class="mono">{d.hostId ?? "—"}</td>
                <td class="mono small wrap">{d.path ?? "—"}</td>
                <td class="num">{bytes(d.capacityGiB * GiB)}</td>
                <td class="num">{d.overcommit}×</td>
                <td class="num">{bytes(d.provisionedBytes)}</td>
                <td class="num">{bytes(d.effectiveFreeBytes)}</td>
                <td class="grow">
                  <div class="bar thin" title={`${used.toFixed(1)} %`}>
                    <span
                      class="seg"
                      style={{
                        width: `${Math.min(100, used)}%`,
                        background: used > 85 ? "#e03131" : "#1c6dd0",
                      }}
                    />
                  </div>
                  <span class="small muted">
                    {used.toFixed(1)} % of {bytes(limit)}
                  </span>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
