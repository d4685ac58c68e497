/** What commands print: the API's JSON with --json (one document on stdout), tables otherwise. */
import Table from "cli-table3";

export type Cell = string | number | boolean | undefined | null;

export function printJson(doc: unknown): void {
  process.stdout.write(`${JSON.stringify(doc ?? null, null, 2)}\n`);
}

function cell(value: Cell): string {
  return value === undefined || value === null || value === "" ? "-" : String(value);
}

/** Rows under a header; "(none)" for an empty list. */
export function printTable(head: string[], rows: Cell[][]): void {
  if (rows.length === 0) {
    process.stdout.write("(none)\n");
    return;
  }
  const table = new Table({ head, style: { head: [], border: [] } });
  for (const row of rows) table.push(row.map(cell));
  process.stdout.write(`${table.toString()}\n`);
}

/** One object, one field per line. */
export function printFields(fields: [string, Cell][]): void {
  const table = new Table({ style: { head: [], border: [] } });
  for (const [name, value] of fields) table.push({ [name]: cell(value) });
  process.stdout.write(`${table.toString()}\n`);
}

export function printLine(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** `AVAILABLE 3, PROVISIONING 1`: only the states that have desktops. */
export function counts(byState: Record<string, number> | undefined): string {
  const parts = Object.entries(byState ?? {}).filter(([, n]) => n > 0);
  return parts.length ? parts.map(([state, n]) => `${state} ${n}`).join(", ") : "none";
}
