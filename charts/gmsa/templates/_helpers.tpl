{{/*
Names. The Deployment, Service, ServiceAccount, ClusterRole and webhook configurations are all
named after the release, like the reference chart, so its values files and upgrade paths work.
*/}}
{{- define "gmsa.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gmsa.certsName" -}}
{{- printf "%s-certs" (include "gmsa.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The webhook entry name, as the reference chart. */}}
{{- define "gmsa.webhookEntryName" -}}
admission-webhook.windows-gmsa.sigs.k8s.io
{{- end -}}

{{- define "gmsa.labels" -}}
app.kubernetes.io/name: gmsa
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels: `app: <release>` as the reference (Deployment selectors are immutable). */}}
{{- define "gmsa.selectorLabels" -}}
app: {{ include "gmsa.name" . }}
{{- end -}}

{{- define "gmsa.image" -}}
{{- $registry := "" -}}
{{- if .Values.global.systemDefaultRegistry -}}
{{- $registry = printf "%s/" (trimSuffix "/" .Values.global.systemDefaultRegistry) -}}
{{- end -}}
{{- printf "%s%s:%s" $registry .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The certificate mode: the explicit `certificates.mode`, else derived from the reference
chart's values (certManager.enabled, then a caBundle), else csr.
*/}}
{{- define "gmsa.certMode" -}}
{{- $c := .Values.certificates -}}
{{- if $c.mode -}}
{{- $c.mode -}}
{{- else if $c.certManager.enabled -}}
certManager
{{- else if $c.caBundle -}}
secret
{{- else -}}
csr
{{- end -}}
{{- end -}}

{{/*
The caBundle line for a webhook clientConfig, or nothing.
- certManager: nothing (cert-manager's CA injector fills it from the annotation).
- csr: nothing (the post-install/post-upgrade Job patches it; Helm leaves a field that neither
  the old nor the new manifest sets alone, so upgrades keep it).
- secret: certificates.caBundle, else the Secret's ca.crt read at install time; neither is an
  error (a webhook without a usable caBundle would reject every pod it sees).
*/}}
{{- define "gmsa.caBundle" -}}
{{- if eq (include "gmsa.certMode" .) "secret" -}}
{{- $bundle := .Values.certificates.caBundle -}}
{{- if not $bundle -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace .Values.certificates.secretName -}}
{{- if and $secret $secret.data (hasKey $secret.data "ca.crt") -}}
{{- $bundle = index $secret.data "ca.crt" -}}
{{- end -}}
{{- end -}}
{{- if not $bundle -}}
{{- fail (printf "certificates.mode=secret needs the CA that signed the serving certificate: set certificates.caBundle (base64 PEM), or create Secret %q in namespace %q with ca.crt, tls.crt and tls.key before installing (offline rendering needs certificates.caBundle); or use certificates.mode=csr to have the chart issue the certificate" .Values.certificates.secretName .Release.Namespace) -}}
{{- end -}}
caBundle: {{ $bundle }}
{{- end -}}
{{- end -}}

{{- define "gmsa.matchConditionsEnabled" -}}
{{- $v := .Values.webhook.matchConditions.enabled -}}
{{- if eq (toString $v) "auto" -}}
{{- if semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version -}}true{{- end -}}
{{- else if eq (toString $v) "true" -}}
true
{{- end -}}
{{- end -}}

{{/*
CEL: does the Pod in variable `.` (object or oldObject) mention GMSA anywhere: the pod's
securityContext.windowsOptions, or any container, init container or ephemeral container's.
A windowsOptions "mentions GMSA" when it has gmsaCredentialSpecName or gmsaCredentialSpec.
*/}}
{{- define "gmsa.cel.windowsOptionsMentionGmsa" -}}
has({{ . }}.securityContext) && has({{ . }}.securityContext.windowsOptions) && (has({{ . }}.securityContext.windowsOptions.gmsaCredentialSpecName) || has({{ . }}.securityContext.windowsOptions.gmsaCredentialSpec))
{{- end -}}

{{- define "gmsa.cel.podMentionsGmsa" -}}
{{- $p := . -}}
({{ include "gmsa.cel.windowsOptionsMentionGmsa" (printf "%s.spec" $p) }})
{{- range $field := list "containers" "initContainers" "ephemeralContainers" }}
|| (has({{ $p }}.spec.{{ $field }}) && {{ $p }}.spec.{{ $field }}.exists(c, {{ include "gmsa.cel.windowsOptionsMentionGmsa" "c" }}))
{{- end }}
{{- end -}}

{{/*
The matchConditions list of a webhook: the new pod mentions GMSA, or (UPDATE only; oldObject
is null on CREATE) the old one did.
*/}}
{{- define "gmsa.matchConditions" -}}
{{- if include "gmsa.matchConditionsEnabled" . }}
matchConditions:
  - name: pod-mentions-gmsa
    expression: |
      {{- include "gmsa.cel.podMentionsGmsa" "object" | nindent 6 }}
      || (request.operation == "UPDATE" && (
      {{- include "gmsa.cel.podMentionsGmsa" "oldObject" | nindent 6 }}
      ))
{{- end }}
{{- end -}}

{{/*
namespaceSelector of the MUTATING webhook: never the release namespace nor excludeNamespaces;
opt-out also skips namespaces labelled windows.k8s.io/disabled=true, opt-in needs
optInLabel=optInValue.
*/}}
{{- define "gmsa.namespaceSelector" -}}
{{- $ns := .Values.webhook.namespaceSelector -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ prepend ($ns.excludeNamespaces | default list) .Release.Namespace | uniq | toJson }}
{{- if eq $ns.mode "optIn" }}
    - key: {{ $ns.optInLabel }}
      operator: In
      values: [{{ $ns.optInValue | quote }}]
{{- else }}
    - key: windows.k8s.io/disabled
      operator: NotIn
      values: ["true"]
{{- end }}
{{- end -}}

{{/*
namespaceSelector of the VALIDATING webhook (the `use` check). With matchConditions on, only
pods that mention GMSA are sent and the webhook's own pods never do, so there is no bootstrap
deadlock to avoid: every namespace is checked, the release namespace and kube-system included,
except webhook.validation.unsafeExcludeNamespaces (each one a hole in the `use` check). Without
matchConditions (before 1.30) every pod of a selected namespace is sent, so the mutating
webhook's exclusions apply here too: the webhook's own pods and kube-system's must not wait
for the webhook (docs/compat.md).
*/}}
{{- define "gmsa.validatingNamespaceSelector" -}}
{{- if include "gmsa.matchConditionsEnabled" . }}
{{- $holes := .Values.webhook.validation.unsafeExcludeNamespaces | default list }}
{{- if $holes }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ $holes | uniq | toJson }}
{{- else }}
namespaceSelector: {}
{{- end }}
{{- else }}
{{- include "gmsa.namespaceSelector" . }}
{{- end }}
{{- end -}}

{{/* Fields shared by the mutating and validating webhook entries; `.validating` picks the
namespaceSelector. */}}
{{- define "gmsa.webhookCommon" -}}
{{- $root := .root -}}
failurePolicy: {{ $root.Values.webhook.failurePolicy }}
timeoutSeconds: {{ $root.Values.webhook.timeoutSeconds }}
admissionReviewVersions: ["v1", "v1beta1"]
sideEffects: None
{{ if .validating }}{{ include "gmsa.validatingNamespaceSelector" $root }}{{ else }}{{ include "gmsa.namespaceSelector" $root }}{{ end }}
{{- include "gmsa.matchConditions" $root }}
{{- end -}}

{{/* Metadata of the webhook configurations (cert-manager CA injection in that mode). */}}
{{- define "gmsa.webhookConfigMetadata" -}}
metadata:
  name: {{ include "gmsa.name" . }}
  labels:
    {{- include "gmsa.labels" . | nindent 4 }}
  {{- if eq (include "gmsa.certMode" .) "certManager" }}
  annotations:
    cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "gmsa.name" . }}
  {{- end }}
{{- end -}}

{{/* clientConfig of a webhook entry; `.path` is /mutate or /validate. */}}
{{- define "gmsa.clientConfig" -}}
clientConfig:
  service:
    name: {{ include "gmsa.name" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- with include "gmsa.caBundle" .root }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/*
Pod-level security context: hardened defaults, then the user's podSecurityContext. For the
webhook pod (`.webhook`) with a port below 1024 (the reference's containerPort "443"), the safe,
namespaced sysctl net.ipv4.ip_unprivileged_port_start lets the non-root process bind it with
no capability. Call with (dict "root" $ "webhook" bool).
*/}}
{{- define "gmsa.podSecurityContext" -}}
{{- $defaults := dict "runAsNonRoot" true "runAsUser" 65532 "runAsGroup" 65532 "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- $port := min (int .root.Values.containerPort) (int .root.Values.adminPort) -}}
{{- if and .webhook (lt $port 1024) -}}
{{- $_ := set $defaults "sysctls" (list (dict "name" "net.ipv4.ip_unprivileged_port_start" "value" (toString $port))) -}}
{{- end -}}
{{- toYaml (mergeOverwrite $defaults (deepCopy (.root.Values.podSecurityContext | default dict))) -}}
{{- end -}}

{{/* Container security context: hardened defaults, then the user's securityContext. */}}
{{- define "gmsa.containerSecurityContext" -}}
{{- $defaults := dict "allowPrivilegeEscalation" false "readOnlyRootFilesystem" true "runAsNonRoot" true "capabilities" (dict "drop" (list "ALL")) "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- toYaml (mergeOverwrite $defaults (deepCopy (.Values.securityContext | default dict))) -}}
{{- end -}}

{{/* nodeSelector: always kubernetes.io/os=linux, plus nodeSelector (and the reference's nodeselector). */}}
{{- define "gmsa.nodeSelector" -}}
{{- $sel := dict "kubernetes.io/os" "linux" -}}
{{- $sel = mergeOverwrite $sel (deepCopy (.Values.nodeselector | default dict)) (deepCopy (.Values.nodeSelector | default dict)) -}}
{{- toYaml $sel -}}
{{- end -}}

{{/* Pod spec fields shared by the webhook and the cert Job pods: (dict "root" $ "webhook" bool). */}}
{{- define "gmsa.podPlacement" -}}
securityContext:
  {{- include "gmsa.podSecurityContext" . | nindent 2 }}
{{- with .root }}
nodeSelector:
  {{- include "gmsa.nodeSelector" . | nindent 2 }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.setPodOs }}
os:
  name: linux
{{- end }}
{{- end }}
{{- end -}}

{{/*
The cert Job's arguments: `gmsa certs <verb>` for the release's Service and Secret.
Call with (dict "root" $ "verb" "issue" "patch" true).
*/}}
{{- define "gmsa.certsArgs" -}}
{{- $v := .root.Values.certificates -}}
- certs
- {{ .verb }}
- --service
- {{ include "gmsa.name" .root }}
- --namespace
- {{ .root.Release.Namespace }}
- --secret
- {{ $v.secretName }}
- --signer
- {{ $v.csr.signerName }}
- {{ ternary "--approve" "--no-approve" $v.csr.approve }}
{{- with $v.csr.duration }}
- --duration
- {{ . | quote }}
{{- end }}
{{- if eq .verb "renew" }}
- --renew-before
- {{ $v.csr.renew.renewBefore | quote }}
{{- end }}
{{- if .patch }}
- --patch-webhook
- {{ include "gmsa.name" .root }}
{{- end }}
{{- end -}}

{{/* Pod template spec of the cert Jobs (issue before install, patch after, renew by cron). */}}
{{- define "gmsa.certsPodSpec" -}}
serviceAccountName: {{ .serviceAccount }}
restartPolicy: Never
automountServiceAccountToken: true
{{ include "gmsa.podPlacement" (dict "root" .root "webhook" false) }}
containers:
  - name: certs
    image: {{ include "gmsa.image" .root | quote }}
    imagePullPolicy: {{ .root.Values.image.imagePullPolicy }}
    command: ["/usr/local/bin/gmsa"]
    args:
      {{- include "gmsa.certsArgs" . | nindent 6 }}
    securityContext:
      {{- include "gmsa.containerSecurityContext" .root | nindent 6 }}
    resources:
      {{- toYaml .root.Values.certificates.csr.resources | nindent 6 }}
{{- end -}}

{{/*
metadata of a cert RBAC object: `.name`, `.root`, `.namespaced`, and for the hook copy
(`.hook`) the pre-install/pre-upgrade hook annotations with `.weight`.
*/}}
{{- define "gmsa.certsMeta" -}}
metadata:
  name: {{ .name }}
  {{- if .namespaced }}
  namespace: {{ .root.Release.Namespace }}
  {{- end }}
  labels:
    {{- include "gmsa.labels" .root | nindent 4 }}
  {{- if .events }}
  annotations:
    helm.sh/hook: {{ .events }}
    helm.sh/hook-weight: {{ .weight | quote }}
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
  {{- end }}
{{- end -}}

{{/*
HostAccountConfig's PluginGUID and PluginInput as JSON {"guid", "input"} (empty guid: none).
`plugin` names a plugin of gmsa's catalogue (crd/src/ccg.rs, docs/ccg.md) and builds its input
from its own values, checked with the catalogue's rules and messages (e2e/tests/chart_ccg.rs
holds the two together); else pluginGUID/pluginInput are written as given.
*/}}
{{- define "gmsa.ccgHostAccount" -}}
{{- $h := . -}}
{{- $at := "credential.hostAccountConfig" -}}
{{- if ne (toString $h.portableCcgVersion) "1" -}}
{{- fail (printf "%s.portableCcgVersion: %q is not the only version ccg.exe knows, \"1\"" $at (toString $h.portableCcgVersion)) -}}
{{- end -}}
{{- $plugin := $h.plugin | default "" -}}
{{- if eq $plugin "aws" -}}
{{- $region := "[a-z]{2}(-[a-z]+){1,2}-[0-9]+:[0-9]{12}" -}}
{{- if not (regexMatch (printf "^arn:(aws|aws-cn|aws-us-gov):(secretsmanager:%s:secret:.+|ssm:%s:parameter/.+)$" $region $region) ($h.credentialArn | default "")) -}}
{{- fail (printf "%s.credentialArn is not a Secrets Manager secret or SSM parameter ARN; the AWS CCG plugin reads a JSON document as a string: {\"credentialArn\": \"arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME\"} (or arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)" $at) -}}
{{- end -}}
{{- dict "guid" "{859E1386-BDB4-49E8-85C7-3070B13920E1}" "input" (dict "credentialArn" $h.credentialArn | toJson) | toJson -}}
{{- else if eq $plugin "azure-key-vault" -}}
{{- if not (regexMatch "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$" ($h.objectId | default "")) -}}
{{- fail (printf "%s.objectId: ObjectId is not a GUID (the managed identity's object id, unbraced)" $at) -}}
{{- end -}}
{{- if not (regexMatch "^https://[A-Za-z0-9-]{3,24}\\.vault\\.(azure\\.net|azure\\.cn|usgovcloudapi\\.net)/secrets/[A-Za-z0-9-]{1,127}(/[0-9a-fA-F]+)?/?$" ($h.secretUri | default "")) -}}
{{- fail (printf "%s.secretUri: SecretUri is not an https Key Vault secret URL (https://VAULT.vault.azure.net/secrets/NAME)" $at) -}}
{{- end -}}
{{- dict "guid" "{CCC2A336-D7F3-4818-A213-272B7924213E}" "input" (printf "ObjectId=%s;SecretUri=%s" $h.objectId $h.secretUri) | toJson -}}
{{- else if eq $plugin "rancher" -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" ($h.accountProviderNamespace | default "")) -}}
{{- fail (printf "%s.accountProviderNamespace: the first part is not a namespace name (RFC 1123 label)" $at) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" ($h.readerSecret | default "")) -}}
{{- fail (printf "%s.readerSecret: the second part is not a Secret name (RFC 1123 subdomain)" $at) -}}
{{- end -}}
{{- dict "guid" "{E4781092-F116-4B79-B55E-28EB6A224E26}" "input" (printf "%s:%s" $h.accountProviderNamespace $h.readerSecret) | toJson -}}
{{- else if $h.pluginGUID -}}
{{- dict "guid" (printf "{%s}" (trimPrefix "{" (trimSuffix "}" $h.pluginGUID))) "input" $h.pluginInput | toJson -}}
{{- else -}}
{{- dict "guid" "" "input" "" | toJson -}}
{{- end -}}
{{- end -}}
