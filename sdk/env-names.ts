/**
 * Secrets to environment variables (docs/api.md "CLI"), shared by `coffer run`/`export` and the
 * GitHub Action: each key upper-cased, characters outside [A-Z0-9_] become '_'.
 */
export const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
const DANGEROUS =
  /^(LD_PRELOAD|LD_LIBRARY_PATH|LD_AUDIT|DYLD_.*|NODE_OPTIONS|NODE_PATH|BASH_ENV|ENV|PATH|PYTHONPATH|PYTHONSTARTUP|PYTHONHOME|PERL5OPT|PERL5LIB|RUBYOPT|RUBYLIB|GIT_SSH_COMMAND|GIT_SSH|IFS|PS4|SHELLOPTS|JAVA_TOOL_OPTIONS|COFFER_TOKEN|COFFER_TOKEN_FILE|COFFER_ADDR)$/;

export const envNameOf = (key: string, prefix = '') => prefix + key.toUpperCase().replace(/[^A-Z0-9_]/g, '_');

/** A name that changes how programs load or run code, unless the operator allowed it (`--allow-env`). */
export const isDangerousName = (name: string, allow: readonly string[] = []) =>
  DANGEROUS.test(name) && !allow.includes(name);
