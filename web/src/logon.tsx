/**
 * Logging a user on from the console: a 200 is a session with its one-time connection; a 202 (a
 * self-sizing pool with none free) is a ticket in line, followed here until it is served or expires.
 */
import { useEffect, useState } from "preact/hooks";
import { ApiError, enc, getJson, postJson } from "./api.ts";
import { time } from "./format.ts";
import type { LogonAnswer, LogonTicket, SessionDetail } from "./types.ts";
import { ErrorLine } from "./ui.tsx";

/** How often a waiting ticket is read, and how long past its validUntil it is still followed. */
const ticketPollMs = 1000;
const ticketGraceMs = 15_000;

const asApiError = (err: unknown) =>
  err instanceof ApiError ? err : new ApiError(0, { title: String(err) });

const logonText = (a: LogonAnswer) =>
  `${a.userId} ${a.reconnected ? "reconnected to" : "logged on to"} ${a.desktopId}`;

type Result = { ok: string } | { error: ApiError } | { ticket: LogonTicket };

export function LogonForm(props: { poolId: string; onLogon: (answer: LogonAnswer) => void }) {
  const [userId, setUserId] = useState("");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Result | undefined>(undefined);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!userId.trim()) return;
    setBusy(true);
    try {
      const answer = await postJson<LogonAnswer | LogonTicket>(`/v1/pools/${enc(props.poolId)}/logons`, {
        userId: userId.trim(),
      });
      if (answer.status === 200 && "connection" in answer.body) {
        props.onLogon(answer.body);
        setResult({ ok: logonText(answer.body) });
      } else if (answer.status === 202 && "ticketId" in answer.body) setResult({ ticket: answer.body });
      else setResult({ ok: `answered ${answer.status}: try again shortly` });
    } catch (err) {
      setResult({ error: asApiError(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="logon">
      <form class="inline" onSubmit={submit} data-testid="logon-form">
        <label>
          Log a user on{" "}
          <input
            value={userId}
            placeholder="user id"
            onInput={(e) => setUserId(e.currentTarget.value)}
            maxLength={128}
          />
        </label>
        <button type="submit" disabled={busy || !userId.trim()}>
          Log on
        </button>
        {result && "ok" in result && <span class="ok-text">{result.ok}</span>}
        {result && "error" in result && <ErrorLine error={result.error} />}
      </form>
      {result && "ticket" in result && (
        <TicketView key={result.ticket.ticketId} first={result.ticket} onLogon={props.onLogon} />
      )}
    </div>
  );
}

interface Seen {
  at: number;
  state: LogonTicket["state"];
  position: number;
}

/**
 * A queued logon: its state and place in line, read every second until it is served or expired (or
 * past its validUntil by a margin: then it is left). Once served, the user's logon is made again:
 * the API reconnects a user who has a session, and that answer carries the connection a 200 has.
 */
function TicketView(props: { first: LogonTicket; onLogon: (answer: LogonAnswer) => void }) {
  const [ticket, setTicket] = useState(props.first);
  const [seen, setSeen] = useState<Seen[]>([
    { at: Date.now(), state: props.first.state, position: props.first.position },
  ]);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [outcome, setOutcome] = useState<string | undefined>(undefined);
  const [gaveUp, setGaveUp] = useState(false);
  const { poolId, ticketId, userId } = props.first;
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = Date.parse(props.first.validUntil) + ticketGraceMs;
    const note = (t: LogonTicket) =>
      setSeen((s) => {
        const last = s[s.length - 1];
        return last?.state === t.state && last.position === t.position
          ? s
          : [...s, { at: Date.now(), state: t.state, position: t.position }];
      });
    const served = async (t: LogonTicket) => {
      try {
        const again = await postJson<LogonAnswer | LogonTicket>(`/v1/pools/${enc(poolId)}/logons`, {
          userId,
        });
        if (!live) return;
        if (again.status === 200 && "connection" in again.body && again.body.sessionId === t.sessionId) {
          props.onLogon(again.body);
          setOutcome(`${again.body.userId} logged on to ${again.body.desktopId}`);
          return;
        }
        const s = await getJson<SessionDetail>(`/v1/sessions/${enc(t.sessionId ?? "")}`);
        if (live) setOutcome(`${s.userId} logged on to ${s.desktopId} (session ${s.state.toLowerCase()})`);
      } catch (err) {
        if (live) setError(asApiError(err));
      }
    };
    const poll = async () => {
      try {
        const t = await getJson<LogonTicket>(`/v1/pools/${enc(poolId)}/logons/${enc(ticketId)}`);
        if (!live) return;
        setTicket(t);
        note(t);
        setError(undefined);
        if (t.state === "SERVED") return void (await served(t));
        if (t.state !== "WAITING") return;
      } catch (err) {
        if (!live) return;
        setError(asApiError(err));
      }
      if (Date.now() > deadline) return setGaveUp(true);
      timer = setTimeout(poll, ticketPollMs);
    };
    timer = setTimeout(poll, ticketPollMs);
    return () => {
      live = false;
      if (timer) clearTimeout(timer);
    };
  }, [ticketId]);
  const waited = Math.round(
    ((ticket.servedAt ? Date.parse(ticket.servedAt) : Date.now()) - Date.parse(ticket.createdAt)) / 1000,
  );
  return (
    <div
      class={`ticket ticket-${ticket.state.toLowerCase()}`}
      data-testid="ticket"
      data-ticket={ticket.ticketId}
      data-state={ticket.state}
      data-position={ticket.position}
    >
      <div>
        <b>In line</b> for {ticket.userId}: ticket <span class="mono">{ticket.ticketId}</span>{" "}
        <span class={`pill ticket-${ticket.state.toLowerCase()}`}>{ticket.state}</span>
        {ticket.state === "WAITING" && (
          <>
            {" "}
            <b data-testid="ticket-position">
              {ticket.position === 0 ? "next in line" : `${ticket.position} ahead`}
            </b>
            <span class="muted"> · valid until {time(ticket.validUntil)}</span>
          </>
        )}
        {ticket.state === "SERVED" && <span class="muted"> after {waited} s</span>}
        {ticket.state === "EXPIRED" && (
          <span class="error-text"> not served before {time(ticket.validUntil)}</span>
        )}
      </div>
      <ol class="ticket-steps small muted">
        {seen.map((s) => (
          <li key={`${s.at}-${s.state}-${s.position}`}>
            {time(new Date(s.at).toISOString())} {s.state}
            {s.state === "WAITING" ? ` (position ${s.position})` : ""}
          </li>
        ))}
      </ol>
      {outcome && <div class="ok-text">{outcome}</div>}
      {gaveUp && <div class="error-text">Still waiting past its validity: no longer followed here.</div>}
      <ErrorLine error={error} />
    </div>
  );
}
