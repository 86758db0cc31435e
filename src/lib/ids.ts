import { v7 } from "uuid";

/** Time-ordered, opaque ids made in the Worker, so a row and its queue job can be written at once. */
export const newId = (): string => v7();

/** Accepts exactly the shape `newId` makes (lower-case UUID). */
export const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
