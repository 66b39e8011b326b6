package connections

import (
	"fmt"
	"strings"
)

// Kind is a connection kind, as upstream names them.
type Kind string

// The connection kinds. The first seven have built-in handlers upstream.
const (
	HostPath      Kind = "host_path"
	VolumeClaim   Kind = "volume_claim"
	GCS           Kind = "gcs"
	S3            Kind = "s3"
	WASB          Kind = "wasb"
	Registry      Kind = "registry"
	Git           Kind = "git"
	AWS           Kind = "aws"
	GCP           Kind = "gcp"
	Azure         Kind = "azure"
	MySQL         Kind = "mysql"
	Postgres      Kind = "postgres"
	Oracle        Kind = "oracle"
	Vertica       Kind = "vertica"
	SQLite        Kind = "sqlite"
	MSSQL         Kind = "mssql"
	Redis         Kind = "redis"
	Presto        Kind = "presto"
	Mongo         Kind = "mongo"
	Cassandra     Kind = "cassandra"
	FTP           Kind = "ftp"
	GRPC          Kind = "grpc"
	HDFS          Kind = "hdfs"
	HTTP          Kind = "http"
	PigCLI        Kind = "pig_cli"
	HiveCLI       Kind = "hive_cli"
	HiveMetastore Kind = "hive_metastore"
	HiveServer2   Kind = "hive_server2"
	JDBC          Kind = "jdbc"
	Jenkins       Kind = "jenkins"
	Samba         Kind = "samba"
	Snowflake     Kind = "snowflake"
	SSH           Kind = "ssh"
	Cloudant      Kind = "cloudant"
	Databricks    Kind = "databricks"
	Segment       Kind = "segment"
	Slack         Kind = "slack"
	Discord       Kind = "discord"
	Mattermost    Kind = "mattermost"
	PagerDuty     Kind = "pagerduty"
	Hipchat       Kind = "hipchat"
	Webhook       Kind = "webhook"
	Custom        Kind = "custom"
)

// Kinds lists every known kind, in upstream's order.
var Kinds = []Kind{
	HostPath, VolumeClaim, GCS, S3, WASB, Registry, Git, AWS, GCP, Azure, MySQL, Postgres,
	Oracle, Vertica, SQLite, MSSQL, Redis, Presto, Mongo, Cassandra, FTP, GRPC, HDFS, HTTP,
	PigCLI, HiveCLI, HiveMetastore, HiveServer2, JDBC, Jenkins, Samba, Snowflake, SSH,
	Cloudant, Databricks, Segment, Slack, Discord, Mattermost, PagerDuty, Hipchat, Webhook, Custom,
}

// kindAliases maps other spellings upstream uses to the canonical kind: the
// published spec writes "pager_duty" where the code uses "pagerduty".
var kindAliases = map[string]Kind{"pager_duty": PagerDuty}

// ParseKind returns the kind named s, or an error listing the valid kinds.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	if k, ok := kindAliases[s]; ok {
		return k, nil
	}
	return "", fmt.Errorf("unknown kind %q; valid kinds are: %s", s, kindList())
}

func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// IsBucket reports the object-store kinds (s3, gcs, wasb).
func (k Kind) IsBucket() bool { return k == S3 || k == GCS || k == WASB }

// IsMount reports the mounted-volume kinds (host_path, volume_claim).
func (k Kind) IsMount() bool { return k == HostPath || k == VolumeClaim }

// IsArtifactStore reports kinds that can hold artifacts (buckets and mounts).
func (k Kind) IsArtifactStore() bool { return k.IsBucket() || k.IsMount() }
