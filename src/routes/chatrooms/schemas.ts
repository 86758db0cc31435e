import { z } from "@hono/zod-openapi";
import { SYSTEM_INSTRUCTION_MAX_BYTES } from "../../lib/gemini-models";
import { REPLY_ERRORS } from "../../services/chat/replies";
import { TitleSchema, wellFormed } from "../shared/schemas";

export const Timestamp = z
  .string()
  .openapi({ format: "date-time", example: "2025-01-15T09:30:00.000Z" });
export const Id = z.string().openapi({ example: "01936f4e-1c2d-7b3a-9f00-123456789abc" });

export const settingsFields = {
  model: z.string().openapi({
    example: "gemini-3.8-flash",
    description: "A model from GET /models that the caller's plan includes (else 422).",
  }),
  system_instruction: z
    .string()
    .refine(
      (s) => new TextEncoder().encode(s).length <= SYSTEM_INSTRUCTION_MAX_BYTES,
      `At most ${SYSTEM_INSTRUCTION_MAX_BYTES} bytes.`,
    )
    .openapi({ example: "Answer like a travel agent." }),
  temperature: z.number().min(0).max(2).openapi({ example: 0.7 }),
  max_output_tokens: z
    .number()
    .int()
    .min(1)
    .openapi({ example: 1024, description: "At most the plan's reply bound (and the model's)." }),
  google_search: z
    .boolean()
    .openapi({ example: false, description: "Ground answers with Google Search (Pro only)." }),
};

export const SettingsView = z
  .object({
    model: settingsFields.model.optional(),
    system_instruction: z.string().optional().openapi({ example: "Answer like a travel agent." }),
    temperature: z.number().optional().openapi({ example: 0.7 }),
    max_output_tokens: z.number().int().optional().openapi({ example: 1024 }),
    google_search: z.boolean().optional().openapi({ example: false }),
  })
  .openapi("ChatSettings", {
    description:
      "The chatroom's own Gemini settings, applied to every reply in it; an absent field is the deployment's default.",
  });

export const SettingsInput = z
  .object({
    model: settingsFields.model.optional(),
    system_instruction: settingsFields.system_instruction.optional(),
    temperature: settingsFields.temperature.optional(),
    max_output_tokens: settingsFields.max_output_tokens.optional(),
    google_search: settingsFields.google_search.optional(),
  })
  .strict()
  .openapi("ChatSettingsInput");

export const SettingsPatch = z
  .object({
    model: settingsFields.model.nullable().optional(),
    system_instruction: settingsFields.system_instruction.nullable().optional(),
    temperature: settingsFields.temperature.nullable().optional(),
    max_output_tokens: settingsFields.max_output_tokens.nullable().optional(),
    google_search: settingsFields.google_search.nullable().optional(),
  })
  .strict()
  .openapi("ChatSettingsPatch", {
    description: "Merged into the chatroom's settings; null puts a field back to the default.",
  });

export const ChatroomSchema = z
  .object({
    id: Id,
    title: z.string().openapi({ example: "Trip ideas" }),
    title_source: z.enum(["auto", "user"]).openapi({
      description:
        '"user": set by the user; "auto": "New chat" or a title Gemini suggested from the first exchange.',
    }),
    description: z.string().nullable().openapi({ example: "Planning the June trip" }),
    settings: SettingsView,
    created_at: Timestamp,
    updated_at: Timestamp,
    last_message_at: Timestamp.nullable(),
    message_count: z.number().int().openapi({ example: 4 }),
  })
  .openapi("Chatroom");

export const MessageSchema = z
  .object({
    id: Id,
    chatroom_id: Id,
    role: z.enum(["user", "model"]),
    content: z.string().openapi({ example: "Suggest three names for a cat." }),
    status: z.enum(["pending", "complete", "failed", "cancelled"]).openapi({
      description:
        "`cancelled`: stopped with POST …/cancel; text streamed before the stop is kept in `content`.",
    }),
    error: z.enum(REPLY_ERRORS).nullable().openapi({
      description:
        "Why a reply failed. The prompt was given back to the daily quota unless Gemini had produced output for it (then `content` keeps the text already streamed).",
    }),
    finish_reason: z.string().nullable().openapi({
      example: "STOP",
      description:
        "Gemini's finishReason for a reply (`STOP`, `MAX_TOKENS` for a reply cut at the tier's output bound, `SAFETY`…); null for prompts and pending replies.",
    }),
    usage: z
      .object({
        prompt_tokens: z.number().int().openapi({ example: 12 }),
        reply_tokens: z
          .number()
          .int()
          .openapi({ example: 48, description: "Visible answer tokens." }),
        thought_tokens: z.number().int().openapi({
          example: 16,
          description: "Thinking tokens, billed as output.",
        }),
        cached_tokens: z.number().int().openapi({ example: 0 }),
        total_tokens: z.number().int().openapi({ example: 76 }),
        model: z.string().nullable().openapi({
          example: "gemini-3.8-flash",
          description: "The model version that answered.",
        }),
      })
      .nullable(),
    grounding: z
      .object({
        queries: z.array(z.string().openapi({ example: "cat names" })),
        sources: z.array(
          z.object({
            uri: z.string().openapi({ example: "https://example.com/cat-names" }),
            title: z.string().nullable().openapi({ example: "example.com" }),
          }),
        ),
      })
      .nullable()
      .openapi({
        description:
          "Google Search grounding of a reply (chatrooms with `settings.google_search`): the queries Gemini ran and the pages it used.",
      }),
    superseded_by: Id.nullable().openapi({
      description:
        "Set on a reply that was regenerated: the newest reply to the same prompt. GET /chatroom/:id shows only the newest; the messages list shows all.",
    }),
    created_at: Timestamp,
    completed_at: Timestamp.nullable(),
  })
  .openapi("Message");

export const DescriptionSchema = z
  .string()
  .max(500)
  .refine(wellFormed, "The description contains invalid characters.")
  .openapi({ example: "Planning the June trip" });

export const CreateChatroomBody = z
  .object({
    title: TitleSchema.optional().openapi({
      description: 'Default "New chat", later replaced by a title Gemini suggests.',
    }),
    description: DescriptionSchema.optional(),
    settings: SettingsInput.optional(),
  })
  .strict()
  .openapi("CreateChatroomRequest");

export const UpdateChatroomBody = z
  .object({
    title: TitleSchema.optional(),
    description: DescriptionSchema.nullable().optional(),
    settings: SettingsPatch.optional(),
  })
  .strict()
  .refine(
    (b) => b.title !== undefined || b.description !== undefined || b.settings !== undefined,
    "Send at least one of title, description, settings.",
  )
  .openapi("UpdateChatroomRequest");

export const ModelsResponse = z
  .object({
    models: z.array(
      z.object({
        id: z.string().openapi({ example: "gemini-3.8-flash" }),
        display_name: z.string().openapi({ example: "Gemini 3.8 Flash" }),
        tiers: z.array(z.enum(["basic", "pro"])),
        input_token_limit: z.number().int().openapi({ example: 1048576 }),
        output_token_limit: z.number().int().openapi({ example: 65536 }),
        supports: z.object({ thinking: z.boolean(), search: z.boolean() }),
      }),
    ),
  })
  .openapi("Models");

export const PromptBody = z
  .object({
    content: z
      .string()
      .min(1)
      .max(4000)
      .refine((s) => s.trim().length > 0, "The content must not be blank.")
      .refine(wellFormed, "The content contains invalid characters.")
      .openapi({ example: "Suggest three names for a cat." }),
  })
  .strict()
  .openapi("PromptRequest");

export const ChatroomParams = z.object({
  id: z.string().openapi({
    param: { name: "id", in: "path" },
    description: "Chatroom id. A malformed, unknown or foreign id is 404.",
  }),
});

export const MessageParams = ChatroomParams.extend({
  message_id: z.string().openapi({ param: { name: "message_id", in: "path" } }),
});

export const ChatroomResponse = z.object({ chatroom: ChatroomSchema }).openapi("ChatroomResponse");
export const ChatroomPage = z
  .object({
    chatrooms: z.array(ChatroomSchema),
    next_cursor: z.string().nullable().openapi({ example: null }),
  })
  .openapi("ChatroomPage");
export const ChatroomDetail = z
  .object({ chatroom: ChatroomSchema, messages: z.array(MessageSchema), has_more: z.boolean() })
  .openapi("ChatroomDetail");
export const MessagePage = z
  .object({
    messages: z.array(MessageSchema),
    next_cursor: z.string().nullable().openapi({ example: null }),
  })
  .openapi("MessagePage");
export const MessageResponse = z.object({ message: MessageSchema }).openapi("MessageResponse");
export const PromptAccepted = z
  .object({ message: MessageSchema, reply: MessageSchema })
  .openapi("PromptAccepted");

export const rateLimitHeaders = z.object({
  "RateLimit-Limit": z.string().openapi({ description: "Prompts allowed per UTC day" }),
  "RateLimit-Remaining": z.string().openapi({ description: "Prompts left today" }),
  "RateLimit-Reset": z.string().openapi({ description: "Seconds until 00:00 UTC" }),
});

/**
 * Streams are read with fetch or EventSource, not the RPC client. `content` typed as optional
 * keeps this 200 out of AppType (zod-openapi skips such entries), so the 202 JSON stays precise.
 */
export const replyHeaders = rateLimitHeaders.extend({
  Location: z.string().openapi({ description: "Where to poll the reply" }),
});

export const sseResponse: {
  description: string;
  headers: typeof replyHeaders;
  content?: { "text/event-stream": { schema: z.ZodString } };
} = {
  description: "Server-Sent Events (with Accept: text/event-stream)",
  content: {
    "text/event-stream": {
      schema: z.string().openapi({
        example: 'id: 1\nevent: delta\ndata: {"text":"Whiskers"}\n\n',
      }),
    },
  },
  headers: replyHeaders,
};

export const IdempotencyHeader = z.object({
  "idempotency-key": z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/, "Use printable ASCII without spaces.")
    .optional(),
});

/** The headers of an answer an Idempotency-Key can replay. */
export const replayHeaders = z.object({
  "Idempotent-Replayed": z.literal("true").optional().openapi({
    description:
      "Present on a resend of an Idempotency-Key: this is the first request's answer, replayed (nothing was created).",
  }),
});

export const ResumeHeaders = z.object({
  "last-event-id": z
    .string()
    .regex(/^\d{1,9}$/, "Use the id of the last delta received (a non-negative integer).")
    .optional()
    .openapi({
      description: "The last delta's `id:`; the stream starts after it. Not an integer ≥ 0: 400.",
      example: "3",
    }),
});

export const RegenerateAccepted = z.object({ reply: MessageSchema }).openapi("RegenerateAccepted");

export const DayString = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "Use YYYY-MM-DD.")
  .openapi({ format: "date", example: "2026-12-01" });
export const UsageCounts = {
  prompts: z.number().int().openapi({ example: 3, description: "Prompts that counted" }),
  input_tokens: z.number().int().openapi({ example: 240 }),
  output_tokens: z.number().int().openapi({ example: 910, description: "Visible answer tokens" }),
  thought_tokens: z
    .number()
    .int()
    .openapi({ example: 64, description: "Thinking, billed as output" }),
};
export const UsageResponse = z
  .object({
    days: z.array(z.object({ date: DayString, ...UsageCounts })),
    totals: z.object(UsageCounts),
    limits: z.object({ prompts_per_day: z.number().int().openapi({ example: 5 }) }),
  })
  .openapi("Usage");
