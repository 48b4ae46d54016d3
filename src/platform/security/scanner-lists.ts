// Reference data for the scanner classifier (scanner.ts). Two sources:
//  - the original systemprompt scanner detector (paths, extensions, user agents), and
//  - our own selection from the OWASP Core Rule Set's data files scanners-user-agents.data
//    (rule 913100) and restricted-files.data (rule 930130), commit 2cbd1d01 of
//    github.com/coreruleset/coreruleset. OWASP CRS is © the OWASP CRS project, Apache License 2.0.
//    The lists below are derived from those files (selected, regrouped, lower-cased), not copies.
// Everything is lower case; the classifier lower-cases its input once.

/** User-agent tokens of vulnerability scanners, fuzzers and internet-wide port scanners. */
export const SCANNER_USER_AGENT_TOKENS: readonly string[] = [
  // original
  "masscan", "nmap", "nikto", "sqlmap", "havij", "acunetix", "nessus", "openvas", "w3af", "metasploit",
  "burpsuite", "zap", "zaproxy", "zgrab", "censys", "shodan", "palo alto", "cortex", "xpanse",
  "probe-image-size", "libredtail", "httpunit", "wp-http", "wp-cron",
  // OWASP CRS scanners-user-agents.data (913100)
  "arachni", "betabot", "bewica-security-scan", "bfac", "commix", "detectify", "dirbuster", "fimap",
  "fuzz faster", "whatwaf", "gobuster", "hexometer", "jbrofuzz", "jorgee", "libwhisker", "morfeus",
  "mozlila", "mozilla/5.g", "netlab360", "netsparker", "nettacker", "nuclei", "securityagent",
  "sitelockspider", "sysscan", "tsunamisecurityscanner", "w3af.org", "webbandit", "webshag", "wfuzz",
  "whatweb", "wprecon", "wpscan", "feroxbuster", "l9explore", "l9tcpid", "wapiti", "vega", "appspider",
  "ironwasp", "skipfish", "qualysguard", "n-stalker", "cmsmap", "sqlninja", "xsstrike", "xsser",
  "joomscan", "droopescan", "ghauri", "zmeu", "wpprobe", "sstimap", "mozilla/4.0 (hydra)", "tplmap",
  "dotdotpwn", "shortscan", "kadimus", "lfisuite", "(compatible; panoptic", "lfimap", "graphw00f",
  "graphql-cop", "jsql", "noseyparker", "trufflehog", "yeswehack-hunter", "tinja", "(compatible; appscan;",
];

/** User agents that start with these are WordPress sites calling in (pingback floods). */
export const SCANNER_USER_AGENT_PREFIXES: readonly string[] = ["wordpress/"];

/**
 * File extensions only scanners ask for on this platform (it serves no PHP, CGI, backups or
 * archives). Original: php env git sql bak old zip gz db config cgi htm; the rest from CRS.
 */
export const SCANNER_EXTENSIONS: ReadonlySet<string> = new Set([
  "php", "env", "git", "sql", "bak", "old", "zip", "gz", "db", "config", "cgi", "htm",
  "php3", "php4", "php5", "php7", "phtml", "asp", "aspx", "jsp", "cfm", "ini", "log", "swp", "sqlite",
  "sqlite3", "mdb", "tar", "tgz", "7z", "rar", "key", "orig", "save", "backup",
]);

/** Whole path segments (directories or pages) scanners probe: the original's list, matched per segment. */
export const SCANNER_PATH_SEGMENTS: ReadonlySet<string> = new Set([
  "admin", "administrator", "wp-admin", "wp-content", "wp-includes", "wp-login", "cgi-bin", "phpmyadmin",
  "pma", "myadmin", "xmlrpc", "luci", "identity", "internal_forms_authentication", "boaform", "hnap1",
  "server-status", "_ignition", "actuator", "web-inf", "meta-inf",
]);

/** Segment sequences (joined with "/") that mark a probe wherever they appear in the path. */
export const SCANNER_PATH_SEQUENCES: readonly string[] = [
  "manager/html", "vendor/phpunit", "etc/passwd", "etc/shadow", "proc/self", "config/parameters.yml",
  "sites/default/settings.php", "app/etc/env.php", "app/etc/local.xml",
];

/**
 * Sensitive files, from CRS restricted-files.data. Besides these names, every hidden path
 * segment (".env", ".git/config", ".aws/credentials", ".bash_history", …; all but
 * ".well-known") counts: browsers never ask a web application for dotfiles.
 */
export const SENSITIVE_NAME_PREFIXES: readonly string[] = ["wp-config", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "gitlab_config_"];

/** "config.php", "config-dev.yml", "config.sample.ini", … (plain config.json is left out: single-page apps load it). */
export const CONFIG_FILE_PATTERN = /^(?!config\.json$)config(?:[._-](?:dev|prod|sample|test))?\.(?:asp|ini|json|php|pl|py|rb|toml|txt|xml|ya?ml|inc\.php|nu|fish)$/;

/** Sensitive files by exact name. */
export const SENSITIVE_FILE_NAMES: ReadonlySet<string> = new Set([
  "web.config", "credentials.json", "secrets.json", "secrets.yml", "secrets.yaml", "docker-compose.yml",
  "docker-compose.yaml", "compose.yml", "compose.yaml", "dockerfile", "authorized_keys", "known_hosts",
  "composer.json", "composer.lock", "package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock",
  "packages.json", "bower.json", "gruntfile.js", "webpack.config.js", "npm-debug.log", "yarn-debug.log",
  "yarn-error.log", "debug.log", "error.log", "errors.log", "php_error.log", "php_errors.log", "pm2.log",
  "thumbs.db", "desktop.ini", "database.yml", "database.yaml", "parameters.yml", "routing.yml",
  "security.yml", "services.yml", "settings.php", "settings.local.php", "default.settings.php",
  "settings.inc.php", "parameters.php", "env.php", "local.xml", "auth.json", "sftp.json",
  "sftp-config.json", "ftp-sync.json", "sendgrid.env", "user_secrets.yml", "aws.yml", "aws.yaml",
  "aws-key.yml", "aws-key.yaml", "initial_root_password", "gitlab.rb", "my.cnf", "mysql.cnf",
  "mysqldump.cnf", "debian.cnf", "php.ini", "phpinfo.php", "phpcs.xml", "phpcs.xml.dist", "weblogic.xml",
  "coverage.xml", "defaults.inc.php", "server.key", "privkey.pem", "go.mod", "go.sum", "cargo.toml",
  "pyproject.toml", "pytest.ini", "setup.py", "build.zig.zon", "fish_variables", "sslvpn_websession",
  "ldap-authentication-report.csv", "blockcypher.log", "boot.ini", "system.ini", "win.ini",
]);

/** Directories that hold nothing a visitor may fetch (build, dependency and IDE folders). */
export const SENSITIVE_DIRECTORIES: ReadonlySet<string> = new Set([
  "node_modules", "__pycache__", "nbproject", "anaconda3", "miniconda3", "openvpn", "wg-clients", "@fs", "@id",
]);

/** /proc and /sys entries that local-file-inclusion probes read (CRS lists them as proc/…, sys/…). */
export const PROC_ENTRIES: ReadonlySet<string> = new Set([
  "self", "thread-self", "version", "cpuinfo", "meminfo", "mounts", "net", "cmdline", "environ", "kcore",
  "kallsyms", "modules", "partitions", "stat", "uptime", "loadavg", "devices", "filesystems", "interrupts",
  "iomem", "ioports", "sched_debug", "slabinfo", "swaps", "sys", "vmstat", "zoneinfo", "keys", "kmsg",
]);
export const SYS_ENTRIES: ReadonlySet<string> = new Set([
  "block", "bus", "class", "dev", "devices", "firmware", "fs", "hypervisor", "kernel", "module", "power",
]);
