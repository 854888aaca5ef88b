{{- define "paramedic.name" -}}paramedic{{- end -}}

{{- define "paramedic.fullname" -}}
{{- if eq .Release.Name "paramedic" -}}paramedic{{- else -}}{{ printf "%s-paramedic" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "paramedic.selectorLabels" -}}
app.kubernetes.io/name: paramedic
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "paramedic.labels" -}}
{{ include "paramedic.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "paramedic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ .Values.serviceAccount.name | default (include "paramedic.fullname" .) }}{{- else -}}{{ .Values.serviceAccount.name | default "default" }}{{- end -}}
{{- end -}}
