import type { ThrowawayPostgres } from '#throwaway-postgres';

export default async function globalTeardown(): Promise<void> {
  const server = (globalThis as Record<string, unknown>).__THROWAWAY_POSTGRES__ as
    ThrowawayPostgres | undefined;
  await server?.destroy();
}
