import { createGeminiService } from "./gemini/service.ts";
import { createNeonService } from "./neon/service.ts";
import { createQStashService } from "./qstash/service.ts";
import { createRedisService } from "./redis/service.ts";
import { createStripeService } from "./stripe/service.ts";

/** Every vendor stand-in, in start order. */
export const ALL_SERVICES = [
  createNeonService,
  createRedisService,
  createQStashService,
  createGeminiService,
  createStripeService,
];
