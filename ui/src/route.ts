import { useEffect, useState } from 'preact/hooks';

/**
 * Hash routes (`#/secrets/team/db`): the server serves one page, and the fragment never
 * reaches it (nor its logs).
 */
export const useRoute = (): string[] => {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
};

export const go = (...parts: string[]) => {
  location.hash = `#/${parts.map(encodeURIComponent).join('/')}`;
};

export const href = (...parts: string[]) => `#/${parts.map(encodeURIComponent).join('/')}`;
