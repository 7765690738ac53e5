/** The client's entry point: the bundle's one script, loaded by the page the node serves at `/`. */
import { render } from 'preact'
import { App } from './app.tsx'
import './styles.css'

render(<App />, document.getElementById('app')!)
