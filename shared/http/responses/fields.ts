/** The small field schemas every answer uses. */
import { z } from "zod";

export const timestamp = z.string().describe("ISO 8601 date-time");
export const count = z.number().int().min(0);
export const bytes = z.number().min(0);
