/** Node bootstrap: user data, redis.conf and ACL file renderers (one source for AWS, local mode and tests). */
export { ACL_USERS, ssmParameterNames, ssmPrefix } from "./contract";
export type { UserDataInput, RedisConfInput, AclInput } from "./contract";
export { renderUserData, USER_DATA_LIMIT_BYTES } from "./userData";
export { renderRedisConf, redisConfTemplate, NEWEST_ENGINE_VERSION } from "./redisConf";
export { renderAclFile, aclTemplate, passwordSha256 } from "./acl";
export { ENGINE_FACTS, DEFAULT_PATHS, nodeFiles } from "./engine";
export type { BootstrapPaths, EngineFacts } from "./engine";
