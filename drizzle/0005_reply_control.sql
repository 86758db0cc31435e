ALTER TABLE "chatrooms" ADD COLUMN "title_source" text DEFAULT 'user' NOT NULL;--> statement-breakpoint
ALTER TABLE "chatrooms" ADD COLUMN "description" text;--> statement-breakpoint
ALTER TABLE "chatrooms" ADD COLUMN "settings" jsonb;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "grounding" jsonb;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "superseded_by" text;