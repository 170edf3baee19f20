{{- define "lepton-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lepton-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lepton-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lepton-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lepton-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "lepton-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "lepton-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lepton-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator's image: repository:tag, or repository:tag@digest when a digest is set, so
a release can be pinned to the bytes it was tested with while the tag stays readable.
*/}}
{{- define "lepton-operator.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $ref .Values.image.digest }}
{{- else }}
{{- $ref }}
{{- end }}
{{- end }}

{{/*
The activator (scale from zero): its own name and selector, so neither the operator's
Deployment nor its Service ever selects the activator's pods.
*/}}
{{- define "lepton-operator.activatorName" -}}
{{- printf "%s-activator" (include "lepton-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lepton-operator.activatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "lepton-operator.name" . }}-activator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: activator
{{- end }}

{{- define "lepton-operator.activatorImage" -}}
{{- printf "%s:%s" .Values.activator.image.repository (.Values.activator.image.tag | default .Chart.AppVersion) }}
{{- end }}
