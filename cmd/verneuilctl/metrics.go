package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves, from a private registry, the metrics collect
// writes at each scrape, with the Go runtime's and the process's
// (go_*, process_*). The Prometheus client lives in verneuilctl only:
// libverneuil.so exports no metrics.
func metricsHandler(collect func(w metricWriter)) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		scrapeCollector(collect))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// scrapeCollector computes its metrics at each scrape. It describes none
// (an unchecked collector): the per-database series come and go with the
// spooled databases.
type scrapeCollector func(w metricWriter)

func (scrapeCollector) Describe(chan<- *prometheus.Desc) {}

func (c scrapeCollector) Collect(ch chan<- prometheus.Metric) { c(metricWriter{ch}) }

// label is one name="value" pair of a sample.
type label struct{ Name, Value string }

// metricWriter turns samples into constant Prometheus metrics.
type metricWriter struct{ ch chan<- prometheus.Metric }

func split(labels []label) (names, values []string) {
	for _, l := range labels {
		names = append(names, l.Name)
		values = append(values, l.Value)
	}
	return names, values
}

func (w metricWriter) sample(name, help string, typ prometheus.ValueType, v float64, labels []label) {
	names, values := split(labels)
	w.ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, names, nil), typ, v, values...)
}

// Counter writes a counter sample (name ends in _total).
func (w metricWriter) Counter(name, help string, v float64, labels ...label) {
	w.sample(name, help, prometheus.CounterValue, v, labels)
}

// Gauge writes a gauge sample.
func (w metricWriter) Gauge(name, help string, v float64, labels ...label) {
	w.sample(name, help, prometheus.GaugeValue, v, labels)
}

// Histogram writes a histogram from bucket upper bounds (ascending, without
// +Inf) and the non-cumulative count per bucket, with one extra entry for
// observations above the last bound.
func (w metricWriter) Histogram(name, help string, bounds []float64, counts []int64, sum float64, labels ...label) {
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, b := range bounds {
		if i < len(counts) {
			cum += uint64(counts[i])
		}
		buckets[b] = cum
	}
	if len(counts) > len(bounds) {
		cum += uint64(counts[len(bounds)])
	}
	names, values := split(labels)
	w.ch <- prometheus.MustNewConstHistogram(prometheus.NewDesc(name, help, names, nil), cum, sum, buckets, values...)
}
