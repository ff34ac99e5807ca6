import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MigrationError } from '../errors/migration.error.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** SQL text with the `{{schema}}` placeholder. */
  readonly sql: string;
}

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/**
 * Finds the package's `migrations/` folder by walking up from this module, so the same code works
 * from `lib/` (tests), `dist/lib/` (the build) and an installed copy in node_modules.
 */
function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'migrations');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir)
      throw new MigrationError('Cannot find the migrations/ folder of nestjs-pg-transport');
    dir = parent;
  }
}

let cached: readonly Migration[] | undefined;

/** The migrations shipped with the library, in version order. Files are never edited once released. */
export function loadMigrations(): readonly Migration[] {
  if (cached) return cached;
  const folder = migrationsFolder();
  const migrations = readdirSync(folder)
    .map((file) => ({ file, match: FILE_NAME.exec(file) }))
    .filter((entry): entry is { file: string; match: RegExpExecArray } => entry.match !== null)
    .map(({ file, match }) => ({
      version: Number(match[1]),
      name: match[2],
      sql: readFileSync(join(folder, file), 'utf8'),
    }))
    .sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new MigrationError(`Migration versions must be contiguous; missing ${index + 1}`);
    }
  });
  cached = migrations;
  return migrations;
}
