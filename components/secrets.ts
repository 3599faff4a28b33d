import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { ACL_USERS, ssmParameterNames, ssmPrefix } from "./bootstrap/contract";
import { childName, tags } from "./naming";

export interface SecretsArgs {
    clusterName: string;
    /** Also create a CA and one cluster certificate. */
    tls: boolean;
    /** KMS key for the SecureString parameters. */
    kmsKeyArn: pulumi.Input<string>;
}

/** CA lifetime: 10 years. */
export const CA_VALIDITY_HOURS = 87600;
/** Cluster certificate lifetime: 3 years, renewed by `pulumi up` in its last 30 days. */
export const CERT_VALIDITY_HOURS = 26280;
export const CERT_EARLY_RENEWAL_HOURS = 720;

/**
 * The ACL users' passwords (admin, app, replication) and, with TLS, a private
 * CA and ONE certificate shared by every node: scaling never changes an
 * existing node's inputs, and Redis does not verify host names on the cluster
 * bus. The certificate names the cluster (CN and DNS SAN `<clusterName>`), so
 * a client that wants host-name verification passes `servername: <clusterName>`.
 *
 * Everything lands in SSM Parameter Store under `/redis-cluster/<cluster>/`,
 * secrets as SecureString with the cluster's KMS key; only the node role may
 * read that path. Nothing secret goes into user data.
 */
export class Secrets extends pulumi.ComponentResource {
    readonly adminPassword: pulumi.Output<string>;
    readonly appPassword: pulumi.Output<string>;
    readonly replicationPassword: pulumi.Output<string>;
    /** PEM of the CA, when tls. */
    readonly caCertPem?: pulumi.Output<string>;
    /** ARN pattern of every parameter of this cluster, for the node role. */
    readonly parameterPathArn: (region: string, accountId: string, partition: string) => string;
    readonly parameters: aws.ssm.Parameter[] = [];

    constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:Secrets", name, {}, opts);
        const parent = { parent: this };
        const names = ssmParameterNames(args.clusterName);

        const password = (role: string) => new random.RandomPassword(childName(name, role), {
            length: 40,
            // Alphanumeric: goes into an ACL file and `masterauth` without quoting rules to get wrong.
            special: false,
        }, parent).result;
        this.adminPassword = pulumi.secret(password(`${ACL_USERS.admin}-password`));
        this.appPassword = pulumi.secret(password(`${ACL_USERS.app}-password`));
        this.replicationPassword = pulumi.secret(password(`${ACL_USERS.replication}-password`));

        const param = (role: string, paramName: string, value: pulumi.Input<string>, secure: boolean, description: string) => {
            this.parameters.push(new aws.ssm.Parameter(childName(name, role), {
                name: paramName,
                type: secure ? "SecureString" : "String",
                keyId: secure ? args.kmsKeyArn : undefined,
                value: secure ? pulumi.secret(value) : value,
                description,
                tags: tags(args.clusterName, paramName),
            }, parent));
        };
        param("admin-password-param", names.adminPassword, this.adminPassword, true, `Password of ACL user ${ACL_USERS.admin}`);
        param("app-password-param", names.appPassword, this.appPassword, true, `Password of ACL user ${ACL_USERS.app}`);
        param("replication-password-param", names.replicationPassword, this.replicationPassword, true, `Password of ACL user ${ACL_USERS.replication}`);

        if (args.tls) {
            const caKey = new tls.PrivateKey(childName(name, "ca-key"), { algorithm: "ECDSA", ecdsaCurve: "P256" }, parent);
            const ca = new tls.SelfSignedCert(childName(name, "ca"), {
                privateKeyPem: caKey.privateKeyPem,
                isCaCertificate: true,
                validityPeriodHours: CA_VALIDITY_HOURS,
                allowedUses: ["cert_signing", "crl_signing"],
                subject: { commonName: `${args.clusterName} Redis CA`, organization: "redis-cluster" },
            }, parent);
            const key = new tls.PrivateKey(childName(name, "cert-key"), { algorithm: "ECDSA", ecdsaCurve: "P256" }, parent);
            const csr = new tls.CertRequest(childName(name, "cert-request"), {
                privateKeyPem: key.privateKeyPem,
                subject: { commonName: args.clusterName, organization: "redis-cluster" },
                dnsNames: [args.clusterName],
            }, parent);
            const cert = new tls.LocallySignedCert(childName(name, "cert"), {
                certRequestPem: csr.certRequestPem,
                caPrivateKeyPem: caKey.privateKeyPem,
                caCertPem: ca.certPem,
                validityPeriodHours: CERT_VALIDITY_HOURS,
                earlyRenewalHours: CERT_EARLY_RENEWAL_HOURS,
                // Nodes are servers to clients and clients to each other (replication, bus).
                allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
            }, parent);
            this.caCertPem = ca.certPem;
            param("tls-ca-cert-param", names.tlsCaCert, ca.certPem, false, "PEM CA certificate of the cluster");
            param("tls-cert-param", names.tlsCert, cert.certPem, false, "PEM certificate shared by the cluster's nodes");
            param("tls-key-param", names.tlsKey, key.privateKeyPem, true, "PEM private key of the nodes' certificate");
        }

        const prefix = ssmPrefix(args.clusterName);
        this.parameterPathArn = (region, accountId, partition) => `arn:${partition}:ssm:${region}:${accountId}:parameter${prefix}/*`;
        this.registerOutputs({ caCertPem: this.caCertPem });
    }
}
