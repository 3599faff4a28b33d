import * as pulumi from "@pulumi/pulumi";
import { ConfigError, CONFIG_NAMESPACE, parseStackConfig, RawValue, StackConfig, unknownKeyProblems } from "./config";

export interface LoadedConfig {
    /** Validated config with defaults. */
    config: StackConfig;
    /**
     * The alarm e-mail, always as a secret Output: it may have been set with
     * `pulumi config set --secret`, and an address is personal data anyway.
     */
    alarmEmail?: pulumi.Output<string>;
}

/**
 * Reads every `redis-cluster:*` key once from the stack's config and validates
 * it with parseStackConfig (the same rules local mode applies to the YAML).
 * `secure:` values arrive decrypted here, so they are validated like the rest.
 * Throws ConfigError listing every problem.
 */
export function loadConfig(): LoadedConfig {
    const cfg = new pulumi.Config(CONFIG_NAMESPACE);
    const config = parseStackConfig((key): RawValue => cfg.get(key), { project: pulumi.getProject(), stack: pulumi.getStack() });
    // getSecret keeps a `secure:` value secret; a plain one is made secret too (an address is personal data).
    const alarmEmail = config.alarmEmail !== undefined ? pulumi.secret(cfg.getSecret("alarmEmail")!) : undefined;
    // A misspelt key would otherwise be silently ignored.
    const unknown = unknownKeyProblems(Object.keys(pulumi.runtime.allConfig()));
    if (unknown.length > 0) throw new ConfigError(unknown);
    return { config, alarmEmail };
}
