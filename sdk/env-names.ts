/**
 * Secrets to environment variables (docs/api.md "CLI"), shared by `coffer run`/`export` and the
 * GitHub Action: each key upper-cased, characters outside [A-Z0-9_] become '_'.
 */
export const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

/**
 * Names that make a program load or run code chosen by whoever wrote the secret, or redirect
 * where it fetches code or Coffer's own tokens. A secret's keys become names (`path/*`, no
 * `--map`), so a writer of secrets must not get to run code in every job that reads them. A
 * guard against the common loaders, not a sandbox: a consumer that reads secrets written by
 * others maps its names explicitly (`--map`).
 */
const DANGEROUS = new RegExp(
  `^(${[
    // the dynamic linker, shells and interpreters
    'LD_PRELOAD|LD_LIBRARY_PATH|LD_AUDIT|DYLD_.*|GCONV_PATH',
    'PATH|IFS|PS1|PS4|PROMPT_COMMAND|SHELLOPTS|BASHOPTS|BASH_ENV|ENV',
    // Windows runners: the shell node starts, the extensions PATH lookups try, PowerShell's modules
    'COMSPEC|PATHEXT|PSMODULEPATH',
    'NODE_OPTIONS|NODE_PATH|PYTHONPATH|PYTHONSTARTUP|PYTHONHOME|PERL5OPT|PERL5LIB|RUBYOPT|RUBYLIB',
    'JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|JDK_JAVA_OPTIONS|CLASSPATH|MAVEN_OPTS|GRADLE_OPTS',
    // git: configuration by environment (core.fsmonitor, core.sshCommand …) and its helpers
    'GIT_CONFIG_COUNT|GIT_CONFIG_KEY_[0-9]+|GIT_CONFIG_VALUE_[0-9]+|GIT_CONFIG_PARAMETERS|GIT_CONFIG|GIT_CONFIG_GLOBAL|GIT_CONFIG_SYSTEM',
    'GIT_SSH|GIT_SSH_COMMAND|GIT_ASKPASS|SSH_ASKPASS|GIT_EXTERNAL_DIFF|GIT_PAGER|GIT_EDITOR|GIT_EXEC_PATH|GIT_TEMPLATE_DIR|GIT_PROXY_COMMAND',
    // commands programs start for the user, and OpenSSL's configuration (engines, key logs)
    'PAGER|MANPAGER|LESSOPEN|LESSCLOSE|EDITOR|VISUAL|BROWSER',
    'OPENSSL_CONF|OPENSSL_ENGINES|OPENSSL_MODULES|SSLKEYLOGFILE',
    // package managers' configuration by environment: registries and script shells
    'NPM_CONFIG_.*|YARN_.*|PIP_INDEX_URL|PIP_EXTRA_INDEX_URL|PIP_CONFIG_FILE',
    // Coffer's own: the address, token and trust of later coffer calls
    'COFFER_.*',
    // the Actions runner's: its OIDC and cache endpoints and tokens, tool cache, API URLs and
    // step files (a later step's OIDC request sent elsewhere hands over the job's identity);
    // GITHUB_TOKEN stays a name a secret may take
    'ACTIONS_.*|RUNNER_.*|GITHUB_(?!TOKEN$).*',
  ].join('|')})$`,
);

export const envNameOf = (key: string, prefix = '') => prefix + key.toUpperCase().replace(/[^A-Z0-9_]/g, '_');

/** A name that changes how programs load or run code, unless the operator allowed it (`--allow-env`). */
export const isDangerousName = (name: string, allow: readonly string[] = []) =>
  DANGEROUS.test(name) && !allow.includes(name);
