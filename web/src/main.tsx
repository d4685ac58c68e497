import "uplot/dist/uPlot.min.css";
import "./app.css";
import "./queue.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, getJson, storedKey } from "./api.ts";
import { ReadinessPanel, ReplicationPanel } from "./dr.tsx";
import { DrillsPanel } from "./drills.tsx";
import { ForksPanel } from "./forks.tsx";
import { MetricsPanel } from "./metrics.tsx";
import { DatastoresPanel } from "./operator.tsx";
import { PoolDesktops, PoolsPanel } from "./pools.tsx";
import { SessionsPanel } from "./sessions.tsx";
import { StoragePanel } from "./storage.tsx";
import type { ConnectionInfo, LogonAnswer } from "./types.ts";
import { ErrorLine } from "./ui.tsx";
import { VncViewer } from "./vnc.tsx";

type Role = "tenant" | "operator";

/** Which kind of key this is: a tenant's lists pools, the operator's is refused there (403). */
async function roleOf(key: string): Promise<Role> {
  try {
    await getJson("/v1/pools", key);
    return "tenant";
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 403) throw err;
    await getJson("/v1/admin/datastores", key);
    return "operator";
  }
}

function SignIn(props: { onSignedIn: (role: Role) => void; error: ApiError | undefined }) {
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(props.error);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const role = await roleOf(key.trim());
      storedKey.set(key.trim());
      props.onSignedIn(role);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, { title: String(err) }));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form class="panel" onSubmit={submit} data-testid="signin">
        <h1>Pristine</h1>
        <p class="muted">Sign in with a tenant or operator API key. It stays in this tab only.</p>
        <label>
          API key
          <input
            type="password"
            name="apiKey"
            autocomplete="off"
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={busy || !key.trim()}>
          Sign in
        </button>
        <ErrorLine error={error} />
      </form>
    </main>
  );
}

const tenantTabs = ["Pools", "Sessions", "Storage", "DR", "Metrics"] as const;
type Tab = (typeof tenantTabs)[number];

function TenantConsole() {
  const [tab, setTab] = useState<Tab>("Pools");
  const [pool, setPool] = useState<string | undefined>(undefined);
  const [connections, setConnections] = useState<ReadonlyMap<string, ConnectionInfo>>(new Map());
  const [viewing, setViewing] = useState<string | undefined>(undefined);
  const onLogon = (answer: LogonAnswer) =>
    setConnections(new Map([...connections, [answer.sessionId, answer.connection]]));
  const vnc = viewing ? connections.get(viewing) : undefined;
  return (
    <>
      <nav class="tabs" aria-label="views">
        {tenantTabs.map((t) => (
          <button
            type="button"
            key={t}
            class={t === tab ? "active" : ""}
            aria-current={t === tab ? "page" : undefined}
            data-tab={t}
            onClick={() => setTab(t)}
          >
            {t}
          </button>
        ))}
      </nav>
      {viewing && vnc?.protocol === "vnc" && (
        <VncViewer sessionId={viewing} connection={vnc} onClose={() => setViewing(undefined)} />
      )}
      {tab === "Pools" && (
        <>
          <PoolsPanel selected={pool} onSelect={setPool} />
          {pool ? (
            <PoolDesktops poolId={pool} onLogon={onLogon} />
          ) : (
            <p class="muted center">Choose a pool to see its desktops.</p>
          )}
        </>
      )}
      {tab === "Sessions" && <SessionsPanel connections={connections} onConnect={setViewing} />}
      {tab === "Storage" && <StoragePanel />}
      {tab === "DR" && (
        <>
          <ReplicationPanel />
          <ForksPanel />
          <ReadinessPanel />
          <DrillsPanel />
        </>
      )}
      {tab === "Metrics" && <MetricsPanel />}
    </>
  );
}

function App() {
  const [role, setRole] = useState<Role | undefined>(undefined);
  const [checking, setChecking] = useState(storedKey.get() !== null);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  useEffect(() => {
    const key = storedKey.get();
    if (!key) return;
    roleOf(key)
      .then(setRole)
      .catch((err: ApiError) => {
        storedKey.clear();
        setError(err);
      })
      .finally(() => setChecking(false));
  }, []);
  const signOut = () => {
    storedKey.clear();
    sessionStorage.clear();
    setRole(undefined);
  };
  if (checking) return <p class="muted center">Checking the key…</p>;
  if (!role) return <SignIn onSignedIn={setRole} error={error} />;
  return (
    <div class="shell">
      <header>
        <h1>Pristine</h1>
        <span class="badge" data-testid="role">
          {role}
        </span>
        <span class="muted">{location.host}</span>
        <button type="button" class="secondary right" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>{role === "operator" ? <DatastoresPanel /> : <TenantConsole />}</main>
    </div>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
