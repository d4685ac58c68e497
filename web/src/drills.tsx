/** DR drills: start one on standby pools, open one by id, their figures as a chart, a table and a report. */
import { useMemo, useState } from "preact/hooks";
import type uPlot from "uplot";
import { type ApiError, enc, getJson, postJson } from "./api.ts";
import { Chart, pairedBarOptions } from "./chart.tsx";
import { bytes, duration, time } from "./format.ts";
import { usePoll } from "./hooks.ts";
import type { Drill, Replication } from "./types.ts";
import { ErrorLine } from "./ui.tsx";

/** There is no list route for drills: the ids of the drills started or opened here are kept for the tab. */
const drillsItem = "pristine.drills";
const storedDrills = (): string[] => {
  try {
    const v = JSON.parse(sessionStorage.getItem(drillsItem) ?? "[]") as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
};

export function DrillsPanel() {
  const [ids, setIds] = useState<string[]>(storedDrills);
  const remember = (id: string) => {
    const next = [id, ...ids.filter((x) => x !== id)].slice(0, 50);
    sessionStorage.setItem(drillsItem, JSON.stringify(next));
    setIds(next);
  };
  const forget = (id: string) => {
    const next = ids.filter((x) => x !== id);
    sessionStorage.setItem(drillsItem, JSON.stringify(next));
    setIds(next);
  };
  const status = usePoll(() => getJson<Replication>("/v1/dr/replication"), 10_000, []);
  const drills = usePoll(
    async () =>
      Promise.all(
        ids.map((id) =>
          getJson<Drill>(`/v1/dr/drills/${enc(id)}`).catch((err: ApiError) => ({ drillId: id, err })),
        ),
      ),
    2000,
    [ids.join(",")],
  );
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const found = (drills.data ?? []).filter((d): d is Drill => !("err" in d));
  const shown = found.find((d) => d.drillId === (selected ?? found[0]?.drillId));
  return (
    <section class="panel" data-testid="drills-panel">
      <h2>
        DR drills <small>{status.data ? `region ${status.data.region}` : ""}</small>
      </h2>
      <ErrorLine error={drills.error} />
      <StartDrill standby={status.data?.dr.standbyPools} replication={status.data} onStarted={remember} />
      <OpenDrill onOpen={remember} />
      {ids.length > 0 && (
        <>
          <DrillChart drills={found} />
          <table class="grid" data-testid="drills-table">
            <thead>
              <tr>
                <th>drill</th>
                <th>state</th>
                <th>phase</th>
                <th>started</th>
                <th class="num">RPO</th>
                <th class="num">RTO first</th>
                <th class="num">RTO all</th>
                <th class="num">users ok / planned</th>
                <th class="num">shipped</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {(drills.data ?? []).map((d) =>
                "err" in d ? (
                  <tr key={d.drillId}>
                    <td class="mono">{d.drillId}</td>
                    <td colSpan={8} class="error-text">
                      {d.err.message}
                    </td>
                    <td>
                      <button type="button" class="secondary" onClick={() => forget(d.drillId)}>
                        Forget
                      </button>
                    </td>
                  </tr>
                ) : (
                  <tr key={d.drillId} data-drill={d.drillId} data-state={d.state}>
                    <td class="mono">
                      <button type="button" class="link" onClick={() => setSelected(d.drillId)}>
                        {d.drillId}
                      </button>
                    </td>
                    <td>
                      <span class={`pill ${d.state.toLowerCase()}`}>{d.state}</span>
                    </td>
                    <td>{d.phase}</td>
                    <td class="nowrap">{time(d.startedAt)}</td>
                    <td class="num">{duration(d.rpoMs)}</td>
                    <td class="num">{duration(d.rtoFirstLogonMs)}</td>
                    <td class="num">{duration(d.rtoAllLogonsMs)}</td>
                    <td class="num">
                      {d.usersVerified ?? 0} / {d.usersPlanned ?? "—"}
                    </td>
                    <td class="num">{bytes(d.bytesShipped)}</td>
                    <td>
                      <button type="button" class="secondary" onClick={() => forget(d.drillId)}>
                        Forget
                      </button>
                    </td>
                  </tr>
                ),
              )}
            </tbody>
          </table>
          {shown && <DrillReport drill={shown} />}
        </>
      )}
    </section>
  );
}

function StartDrill(props: {
  standby: string[] | undefined;
  replication: Replication | undefined;
  onStarted: (id: string) => void;
}) {
  const [chosen, setChosen] = useState<string[]>([]);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  if (!props.standby) return null;
  if (props.standby.length === 0)
    return (
      <p class="muted">
        No pool is replicated into this region ({props.replication?.region}): drills run in the DR region
        {props.replication?.peer ? ` (${props.replication.peer})` : ""}. Open this console on that region's
        API to start one.
      </p>
    );
  const start = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const { body } = await postJson<Drill>("/v1/dr/drills", { pools: chosen });
      setError(undefined);
      props.onStarted(body.drillId);
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="inline" onSubmit={start} data-testid="start-drill">
      <span>Standby pools:</span>
      {props.standby.map((p) => (
        <label key={p} class="check mono">
          <input
            type="checkbox"
            checked={chosen.includes(p)}
            onChange={(e) =>
              setChosen(e.currentTarget.checked ? [...chosen, p] : chosen.filter((x) => x !== p))
            }
          />
          {p}
        </label>
      ))}
      <button type="submit" disabled={busy || chosen.length === 0}>
        Start drill
      </button>
      <ErrorLine error={error} />
    </form>
  );
}

function OpenDrill(props: { onOpen: (id: string) => void }) {
  const [id, setId] = useState("");
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const open = async (e: Event) => {
    e.preventDefault();
    try {
      const drill = await getJson<Drill>(`/v1/dr/drills/${enc(id.trim())}`);
      setError(undefined);
      setId("");
      props.onOpen(drill.drillId);
    } catch (err) {
      setError(err as ApiError);
    }
  };
  return (
    <form class="inline" onSubmit={open} data-testid="open-drill">
      <label>
        Open a drill by id{" "}
        <input value={id} placeholder="drl-…" onInput={(e) => setId(e.currentTarget.value)} />
      </label>
      <button type="submit" disabled={!id.trim()}>
        Open
      </button>
      <ErrorLine error={error} />
    </form>
  );
}

function DrillChart(props: { drills: Drill[] }) {
  const done = props.drills.filter((d) => d.rpoMs !== undefined || d.rtoAllLogonsMs !== undefined).reverse();
  const names = done.map((d) => d.drillId);
  const options = useMemo(
    () =>
      pairedBarOptions({
        categories: names,
        series: [
          { label: "RPO (s)", color: "#e8590c" },
          { label: "RTO, all users on (s)", color: "#1c6dd0" },
        ],
        value: (v) => `${Math.round(v * 10) / 10} s`,
        height: 200,
        what: "drill",
      }),
    [names.join(",")],
  );
  const data = useMemo<uPlot.AlignedData>(
    () => [
      done.map((_, i) => i),
      done.map((d) => (d.rpoMs ?? 0) / 1000),
      done.map((d) => (d.rtoAllLogonsMs === undefined ? null : d.rtoAllLogonsMs / 1000)),
    ],
    [props.drills],
  );
  if (done.length === 0) return null;
  return <Chart options={options} data={data} testid="drills-chart" />;
}

function DrillReport(props: { drill: Drill }) {
  const d = props.drill;
  return (
    <div class="report" data-testid="drill-report" data-drill={d.drillId}>
      <h3>
        Report of <span class="mono">{d.drillId}</span> <small>{d.state}</small>
      </h3>
      <dl>
        <dt>pools</dt>
        <dd class="mono">{d.pools.join(", ")}</dd>
        <dt>drill pools</dt>
        <dd class="mono">{d.drillPools?.join(", ") ?? "—"}</dd>
        <dt>phase</dt>
        <dd>{d.phase}</dd>
        <dt>started / finished</dt>
        <dd>
          {time(d.startedAt)} / {time(d.finishedAt)}
        </dd>
        <dt>RPO</dt>
        <dd>
          {duration(d.rpoMs)} {d.rpoNote ? <span class="muted">({d.rpoNote})</span> : null}
        </dd>
        <dt>RTO</dt>
        <dd>
          first user {duration(d.rtoFirstLogonMs)}, all users {duration(d.rtoAllLogonsMs)}
        </dd>
        <dt>users</dt>
        <dd>
          {d.usersPlanned ?? 0} planned, {d.usersLoggedOn ?? 0} logged on, {d.usersVerified ?? 0} verified,{" "}
          {d.usersFailed?.length ?? 0} failed
        </dd>
        {d.usersFailed?.map((f) => (
          <dd key={f.userId} class="error-text">
            {f.userId}: {f.reason}
          </dd>
        ))}
        <dt>shipped</dt>
        <dd>{bytes(d.bytesShipped)}</dd>
        {d.error && (
          <>
            <dt>error</dt>
            <dd class="error-text">{d.error}</dd>
          </>
        )}
      </dl>
    </div>
  );
}
