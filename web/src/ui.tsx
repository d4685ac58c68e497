import type { ApiError } from "./api.ts";

/** An API error as the API put it: its problem's title and detail (and the field, for bad input). */
export function ErrorLine(props: { error: ApiError | undefined }) {
  if (!props.error) return null;
  const p = props.error.problem;
  return (
    <div class="error" role="alert" data-testid="problem">
      <b>{p.title ?? `HTTP ${props.error.status}`}</b>
      {p.status ? ` (${p.status})` : ""}
      {p.detail ? `: ${p.detail}` : ""}
      {p.field ? ` [${p.field}]` : ""}
    </div>
  );
}
