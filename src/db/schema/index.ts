export * from "./chatrooms";
export * from "./idempotency-keys";
export * from "./messages";
export * from "./refresh-tokens";
export * from "./subscriptions";
export * from "./usage";
export * from "./users";
export * from "./webhook-events";
