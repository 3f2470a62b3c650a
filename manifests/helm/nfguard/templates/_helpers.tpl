{{- define "nfguard.labels" -}}
app.kubernetes.io/part-of: nfguard
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "nfguard.consoleURL" -}}
https://nfguard-console.{{ .Release.Namespace }}.svc:9950
{{- end -}}
