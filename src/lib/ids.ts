import { v7 } from "uuid";

/** Time-ordered, opaque ids made in the Worker, so a row and its queue job can be written at once. */
export const newId = (): string => v7();

/** Accepts exactly the shape `newId` makes (lower-case UUID). */
export const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The Unix milliseconds a `newId` id was made at (its first 48 bits). */
export const idTimeMs = (id: string): number =>
  Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16);
