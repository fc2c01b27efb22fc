import { z } from 'zod';

/** TTLs are seconds (`600`) or durations (`"10m"`, `"1h"`, `"7d"`), up to one year. */
export const ttl = z
  .union([z.number().int().min(1), z.string().regex(/^[1-9][0-9]{0,8}[smhd]?$/, 'expected seconds or a duration such as 10m, 1h, 7d')])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const scale = { s: 1, m: 60, h: 3600, d: 86_400 }[v.at(-1) as 's'];
    return scale ? Number(v.slice(0, -1)) * scale : Number(v);
  })
  .pipe(z.number().max(366 * 86_400, 'at most one year'));
