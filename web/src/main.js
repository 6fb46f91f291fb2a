import { createApp } from 'vue'
import 'uplot/dist/uPlot.min.css'
import './style.css'
import App from './App.vue'
import { connect } from './live.js'
import { forgetToken } from './urls.js'

forgetToken()
connect()
createApp(App).mount('#app')
