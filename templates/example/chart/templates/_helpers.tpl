{{/*
Common labels. Call with a dict: (dict "ctx" $ "name" "api").
*/}}
{{- define "shop.labels" -}}
{{ include "shop.selectorLabels" . }}
app.kubernetes.io/part-of: {{ .ctx.Values.global.partOf | default "shop" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
Selector labels: stable across upgrades, so never add the chart version here.
*/}}
{{- define "shop.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end }}

{{/*
Image reference: repository:tag.
*/}}
{{- define "shop.image" -}}
{{ .repository }}:{{ .tag }}
{{- end }}
